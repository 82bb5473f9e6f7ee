/* The per-packet loop of the lean RTP sender (camera_adapters/fastsend.py), in C.
 *
 * One call sends one access unit to one viewer: for each payload it writes the RTP
 * header (from a per-unit template: sequence number and marker set here), copies the
 * payload behind it, SRTP-protects the packet in place with libsrtp's srtp_protect
 * (pylibsrtp's own copy, whose address fastsend passes in), and sends runs of
 * equal-sized datagrams with one sendmsg each using Linux UDP GSO (UDP_SEGMENT).
 * In Python this loop cost about 4 us of interpreter time per packet on top of SRTP
 * and the syscall; here it is a memcpy and a few stores.
 *
 * Errors are reported, not raised, so fastsend keeps asyncio's semantics: datagrams a
 * full socket would not take (EAGAIN) and runs the kernel refused to segment come back
 * as bytes for the transport's own buffer; any other send error loses the datagram and
 * is returned as an errno for the protocol's error_received.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#ifndef SOL_UDP
#define SOL_UDP 17
#endif
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

#define TRAILER_MAX (16 + 128)  /* libsrtp 2: SRTP_MAX_TRAILER_LEN (tag + MKI) */
#define GSO_MAX_SEGMENTS 64
#define GSO_MAX_BYTES 65000
#define HEADER_MAX 64

typedef int (*protect_fn)(void *ctx, void *packet, int *len);

/* One scratch area for the process: every call runs with the GIL held. */
static uint8_t *scratch = NULL;
static size_t scratch_size = 0;
static size_t *offsets = NULL;
static int *sizes = NULL;
static size_t slots = 0;

static int reserve(size_t bytes, size_t count)
{
    if (bytes > scratch_size) {
        uint8_t *grown = PyMem_RawRealloc(scratch, bytes);
        if (grown == NULL)
            return -1;
        scratch = grown;
        scratch_size = bytes;
    }
    if (count > slots) {
        size_t *o = PyMem_RawRealloc(offsets, count * sizeof(size_t));
        if (o == NULL)
            return -1;
        offsets = o;
        int *s = PyMem_RawRealloc(sizes, count * sizeof(int));
        if (s == NULL)
            return -1;
        sizes = s;
        slots = count;
    }
    return 0;
}

static int parse_addr(PyObject *addr, struct sockaddr_storage *out, socklen_t *len)
{
    const char *host;
    int port;
    unsigned int flowinfo = 0, scope_id = 0;
    if (!PyArg_ParseTuple(addr, "si|II", &host, &port, &flowinfo, &scope_id))
        return -1;
    if (port < 0 || port > 65535) {
        PyErr_SetString(PyExc_ValueError, "port out of range");
        return -1;
    }
    memset(out, 0, sizeof(*out));
    struct sockaddr_in *v4 = (struct sockaddr_in *)out;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        *len = sizeof(*v4);
        return 0;
    }
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        v6->sin6_flowinfo = htonl(flowinfo);
        v6->sin6_scope_id = scope_id;
        *len = sizeof(*v6);
        return 0;
    }
    PyErr_Format(PyExc_ValueError, "not a numeric IP address: %s", host);
    return -1;
}

/* Datagrams [first, n) as a list of bytes, for the transport's buffer. */
static PyObject *leftovers(Py_ssize_t first, Py_ssize_t n)
{
    PyObject *list = PyList_New(n - first);
    if (list == NULL)
        return NULL;
    for (Py_ssize_t i = first; i < n; i++) {
        PyObject *b = PyBytes_FromStringAndSize((const char *)scratch + offsets[i], sizes[i]);
        if (b == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i - first, b);
    }
    return list;
}

static ssize_t send_run(int fd, struct sockaddr_storage *addr, socklen_t addrlen,
                        uint8_t *data, size_t len, int segment, int gso)
{
    struct iovec iov = {.iov_base = data, .iov_len = len};
    struct msghdr msg;
    union {
        char buf[CMSG_SPACE(sizeof(uint16_t))];
        struct cmsghdr align;
    } control;
    memset(&msg, 0, sizeof(msg));
    msg.msg_name = addr;
    msg.msg_namelen = addrlen;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (gso) {
        memset(&control, 0, sizeof(control));
        msg.msg_control = control.buf;
        msg.msg_controllen = sizeof(control.buf);
        struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
        cm->cmsg_level = SOL_UDP;
        cm->cmsg_type = UDP_SEGMENT;
        cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
        uint16_t seg = (uint16_t)segment;
        memcpy(CMSG_DATA(cm), &seg, sizeof(seg));
    }
    ssize_t sent;
    do {
        sent = sendmsg(fd, &msg, 0);
    } while (sent < 0 && errno == EINTR);
    return sent;
}

static int gso_refused(int err)
{
    return err == EIO || err == EINVAL || err == ENOPROTOOPT || err == EOPNOTSUPP || err == EMSGSIZE;
}

PyDoc_STRVAR(send_unit_doc,
"send_unit(protect, ctx, fd, addr, header, seq, payloads, gso, direct)\n"
"-> (next_seq, wire_bytes, errno, unsent)\n\n"
"Packetize, SRTP-protect and send one access unit. ``protect`` and ``ctx`` are the\n"
"addresses of srtp_protect and the srtp_t session; ``header`` is the RTP header with\n"
"extensions (sequence number and marker are set per packet). With ``direct`` false\n"
"nothing is sent: every datagram comes back in ``unsent`` (the transport is already\n"
"buffering). ``unsent`` is None when everything was handed to the kernel.");

static PyObject *send_unit(PyObject *self, PyObject *args)
{
    unsigned long long protect_addr, ctx_addr;
    int fd, seq, gso, direct;
    PyObject *addr, *payloads;
    Py_buffer header;
    if (!PyArg_ParseTuple(args, "KKiOy*iO!pp", &protect_addr, &ctx_addr, &fd, &addr, &header,
                          &seq, &PyList_Type, &payloads, &gso, &direct))
        return NULL;
    PyObject *result = NULL;
    struct sockaddr_storage sa;
    socklen_t salen = 0;
    Py_ssize_t n = PyList_GET_SIZE(payloads);
    size_t hlen = (size_t)header.len;

    if (hlen < 12 || hlen > HEADER_MAX) {
        PyErr_SetString(PyExc_ValueError, "RTP header must be 12..64 bytes");
        goto done;
    }
    if (protect_addr == 0 || ctx_addr == 0) {
        PyErr_SetString(PyExc_ValueError, "no SRTP session");
        goto done;
    }
    if (parse_addr(addr, &sa, &salen) < 0)
        goto done;

    size_t need = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *p = PyList_GET_ITEM(payloads, i);
        if (!PyBytes_Check(p)) {
            PyErr_SetString(PyExc_TypeError, "payloads must be bytes");
            goto done;
        }
        need += hlen + (size_t)PyBytes_GET_SIZE(p) + TRAILER_MAX;
    }
    if (n == 0) {
        result = Py_BuildValue("(iniO)", seq & 0xFFFF, (Py_ssize_t)0, 0, Py_None);
        goto done;
    }
    if (reserve(need, (size_t)n) < 0) {
        PyErr_NoMemory();
        goto done;
    }

    protect_fn protect = (protect_fn)(uintptr_t)protect_addr;
    void *ctx = (void *)(uintptr_t)ctx_addr;
    const uint8_t *tmpl = header.buf;
    size_t off = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *p = PyList_GET_ITEM(payloads, i);
        size_t plen = (size_t)PyBytes_GET_SIZE(p);
        uint8_t *pkt = scratch + off;
        memcpy(pkt, tmpl, hlen);
        if (i == n - 1)
            pkt[1] |= 0x80;
        pkt[2] = (uint8_t)((seq >> 8) & 0xFF);
        pkt[3] = (uint8_t)(seq & 0xFF);
        memcpy(pkt + hlen, PyBytes_AS_STRING(p), plen);
        int len = (int)(hlen + plen);
        int status = protect(ctx, pkt, &len);
        if (status != 0) {
            PyErr_Format(PyExc_ConnectionError, "srtp_protect failed (%d)", status);
            goto done;
        }
        offsets[i] = off;
        sizes[i] = len;
        off += (size_t)len;
        seq = (seq + 1) & 0xFFFF;
    }
    Py_ssize_t wire = (Py_ssize_t)off;

    if (!direct) {
        PyObject *all = leftovers(0, n);
        if (all != NULL)
            result = Py_BuildValue("(iniN)", seq, wire, 0, all);
        goto done;
    }

    int last_error = 0;
    Py_ssize_t i = 0;
    while (i < n) {
        /* a run: segments of the first one's size, the last one possibly shorter */
        int segment = sizes[i];
        Py_ssize_t j = i + 1;
        size_t run_bytes = (size_t)segment;
        if (gso) {
            while (j < n && j - i < GSO_MAX_SEGMENTS && sizes[j] <= segment
                   && run_bytes + (size_t)sizes[j] <= GSO_MAX_BYTES) {
                run_bytes += (size_t)sizes[j];
                j++;
                if (sizes[j - 1] < segment)
                    break;
            }
        }
        ssize_t sent = send_run(fd, &sa, salen, scratch + offsets[i], run_bytes, segment, j - i > 1);
        if (sent < 0) {
            int err = errno;
            if (err == EAGAIN || err == EWOULDBLOCK || (j - i > 1 && gso_refused(err))) {
                PyObject *rest = leftovers(i, n);
                if (rest != NULL)
                    result = Py_BuildValue("(iniN)", seq, wire, err, rest);
                goto done;
            }
            last_error = err;
        }
        i = j;
    }
    result = Py_BuildValue("(iniO)", seq, wire, last_error, Py_None);

done:
    PyBuffer_Release(&header);
    return result;
}

static PyMethodDef methods[] = {
    {"send_unit", send_unit, METH_VARARGS, send_unit_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "camera_adapters._rtpsend",
    "The lean RTP sender's per-packet loop (see camera_adapters/fastsend.py).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__rtpsend(void)
{
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddIntConstant(m, "TRAILER_MAX", TRAILER_MAX) < 0
        || PyModule_AddIntConstant(m, "GSO_MAX_SEGMENTS", GSO_MAX_SEGMENTS) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
