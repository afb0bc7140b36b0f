# SPDX-License-Identifier: GPL-2.0-only
"""Build memswap's Python package and its C extension, memswap._memswap.

The extension compiles cext/*.c together with the swap engine (core/) and
the simulated host (sim/), and links Debian's libxen-dev libraries, whose
flags come from pkg-config. Build in place for the tree's own use with

    /usr/bin/python3 setup.py build_ext --inplace --build-temp build/cext

(`make ext` does this), which leaves daemon/memswap/_memswap*.so.
"""
import glob
import os
import re
import subprocess

from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))
XEN_PKGS = ['xencontrol', 'xenguest', 'xenstore', 'xencall', 'xenforeignmemory']


def pkg_config(*args):
    try:
        out = subprocess.run(['pkg-config', *args, *XEN_PKGS], check=True,
                             capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise SystemExit('setup.py: pkg-config %s failed (is libxen-dev installed? '
                         'scripts/install-deps base): %s' % (' '.join(args), e))
    return out.split()


def rel(pattern):
    return sorted(os.path.relpath(p, HERE)
                  for p in glob.glob(os.path.join(HERE, pattern)))


def sim_sources():
    # Everything in sim/ but programs (a file with main() is a tool or test).
    main_re = re.compile(r'^\s*int\s+main\s*\(', re.M)
    return [p for p in rel('sim/*.c')
            if not main_re.search(open(os.path.join(HERE, p)).read())]


cflags = pkg_config('--cflags')
libs = pkg_config('--libs')

ext = Extension(
    'memswap._memswap',
    sources=rel('cext/*.c') + ['core/memswap.c'] + sim_sources(),
    depends=rel('cext/*.h') + rel('core/*.h') + rel('sim/*.h'),
    include_dirs=['.'] + [f[2:] for f in cflags if f.startswith('-I')],
    library_dirs=[f[2:] for f in libs if f.startswith('-L')],
    libraries=[f[2:] for f in libs if f.startswith('-l')],
    extra_compile_args=['-std=gnu11', '-Wno-unused-parameter',
                        '-Wno-missing-field-initializers', '-fvisibility=hidden']
                       + [f for f in cflags if not f.startswith('-I')],
    extra_link_args=['-pthread'],
)

setup(
    name='memswap',
    version=open(os.path.join(HERE, 'VERSION')).read().strip(),
    description='Move a running Xen PV domain\'s memory by cache colour / NUMA node',
    license='GPL-2.0-only',
    package_dir={'': 'daemon'},
    packages=['memswap'],
    ext_modules=[ext],
    scripts=[p for p in ('daemon/memswapd', 'daemon/memswapctl')
             if os.path.exists(os.path.join(HERE, p))],
    python_requires='>=3.11',
)
