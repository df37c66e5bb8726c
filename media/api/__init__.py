"""The main process's media objects: Worker > Router > Transport > Producer / Consumer.

Each validates its parameters and sends a request over the worker's channel;
the packet state lives in the worker process (`media.engine`).
"""
