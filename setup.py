# SPDX-License-Identifier: GPL-2.0-only
"""Build memswap's Python package and its C extension, memswap._memswap.

The extension is the thin Python layer of cext/ (the method table, argument
parsing, results and errors); it links the archives make builds from the
same tree, once, with the project's flags:

    build/libmemswaphost.a   cext/'s Python-free C (the swap sequence, the
                             Xen and simulator steps, P2M, perf groups)
    build/libmemswapsim.a    the swap engine (core/) and the simulated host

and Debian's libxen-dev libraries (flags from pkg-config). setup.py asks
make for the archives first, so `setup.py build_ext` alone works too; the
tree's own build is

    make ext      (MEMSWAP_BUILD=build python3 setup.py build_ext --inplace)

which leaves daemon/memswap/_memswap*.so.
"""
import os
import subprocess

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.environ.get('MEMSWAP_BUILD', 'build')
XEN_PKGS = ['xencontrol', 'xenguest', 'xenstore', 'xencall', 'xenforeignmemory']
ARCHIVES = [os.path.join(BUILD, 'libmemswaphost.a'), os.path.join(BUILD, 'libmemswapsim.a')]
# The Python layer; everything else under cext/ is in libmemswaphost.a.
SOURCES = ['cext/_memswap.c', 'cext/errors.c', 'cext/util.c', 'cext/sim_backend.c',
           'cext/xen_backend.c', 'cext/perf.c']


def pkg_config(*args):
    try:
        out = subprocess.run(['pkg-config', *args, *XEN_PKGS], check=True,
                             capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise SystemExit('setup.py: pkg-config %s failed (is libxen-dev installed? '
                         'scripts/install-deps base): %s' % (' '.join(args), e))
    return out.split()


class BuildExt(build_ext):
    """Have make bring the archives up to date before linking them."""

    def run(self):
        # A make of its own: a parent make's jobserver descriptors are not
        # passed down to this child.
        env = {k: v for k, v in os.environ.items() if k not in ('MAKEFLAGS', 'MFLAGS')}
        subprocess.run(['make', '-s', '--no-print-directory', '-C', HERE, 'BUILD=' + BUILD]
                       + ARCHIVES, check=True, env=env)
        super().run()


cflags = pkg_config('--cflags')
libs = pkg_config('--libs')

ext = Extension(
    'memswap._memswap',
    sources=SOURCES,
    depends=ARCHIVES + ['cext/memswap_ext.h', 'cext/coop.h', 'cext/perf_core.h',
                        'cext/sim/sim_coop.h', 'cext/xen/xenhost.h'],
    include_dirs=['.'] + [f[2:] for f in cflags if f.startswith('-I')],
    library_dirs=[f[2:] for f in libs if f.startswith('-L')],
    libraries=[f[2:] for f in libs if f.startswith('-l')],
    extra_objects=ARCHIVES,
    extra_compile_args=['-std=gnu11', '-Wno-unused-parameter',
                        '-Wno-missing-field-initializers', '-fvisibility=hidden']
                       + [f for f in cflags if not f.startswith('-I')],
    # The archives' symbols stay inside the module (PyInit__memswap only).
    extra_link_args=['-pthread', '-Wl,--exclude-libs,ALL'],
)

setup(
    name='memswap',
    version=open(os.path.join(HERE, 'VERSION')).read().strip(),
    description='Move a running Xen PV domain\'s memory by cache colour / NUMA node',
    license='GPL-2.0-only',
    package_dir={'': 'daemon'},
    packages=['memswap'],
    ext_modules=[ext],
    cmdclass={'build_ext': BuildExt},
    scripts=[p for p in ('daemon/memswapd', 'daemon/memswapctl')
             if os.path.exists(os.path.join(HERE, p))],
    python_requires='>=3.11',
)
