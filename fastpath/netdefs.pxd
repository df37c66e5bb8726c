# cython: language_level=3
"""C declarations of the socket address types, shared by the fast-path stages."""

from libc.stdint cimport uint32_t


cdef extern from "<sys/socket.h>":
    ctypedef unsigned int socklen_t
    ctypedef unsigned short sa_family_t
    struct sockaddr:
        sa_family_t sa_family
    struct sockaddr_storage:
        sa_family_t ss_family
    int AF_INET
    int AF_INET6


cdef extern from "<netinet/in.h>":
    ctypedef unsigned short in_port_t
    struct in_addr:
        uint32_t s_addr
    struct sockaddr_in:
        sa_family_t sin_family
        in_port_t sin_port
        in_addr sin_addr
    struct in6_addr:
        unsigned char s6_addr[16]
    struct sockaddr_in6:
        sa_family_t sin6_family
        in_port_t sin6_port
        in6_addr sin6_addr
