/* SPDX-License-Identifier: GPL-2.0-only */
/* Domain facts for the swap sequence and the observer (see xenhost.h). */
#include "xenhost.h"

#include <errno.h>
#include <stdlib.h>

int ms_xen_domain_info(struct ms_xen *x, unsigned int domid, xc_domaininfo_t *info)
{
    int n = xc_domain_getinfolist(x->xch, domid, 1, info);

    if ( n < 0 )
        return errno ? errno : EIO;
    /* getinfolist answers with the next domain up when @domid is gone */
    if ( n != 1 || info->domain != domid )
        return ESRCH;
    return 0;
}

int ms_xen_shutdown_reason(const xc_domaininfo_t *info)
{
    if ( !(info->flags & XEN_DOMINF_shutdown) )
        return -1;
    return (int)((info->flags >> XEN_DOMINF_shutdownshift) & XEN_DOMINF_shutdownmask);
}

int ms_xen_read_own_domid(struct ms_xen *x)
{
    unsigned int len = 0;
    char *v, *end;
    unsigned long id;

    /* A relative path: the caller's own home, /local/domain/<self>/domid
     * (xen-init-dom0 writes dom0's; the toolstack a guest's). */
    v = xs_read(x->xsh, XBT_NULL, "domid", &len);
    if ( !v )
        return -(errno ? errno : EIO);
    errno = 0;
    id = strtoul(v, &end, 10);
    if ( len == 0 || v[0] < '0' || v[0] > '9' || end != v + len || errno ||
         id >= DOMID_FIRST_RESERVED )
    {
        free(v);
        return -EINVAL;
    }
    free(v);
    return (int)id;
}
