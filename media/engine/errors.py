"""Request failures the worker answers with a code (the channel carries code and message)."""

from media.channel import ChannelRequestError


def not_found(what: str, ident: str) -> ChannelRequestError:
    return ChannelRequestError("not_found", f"{what} {ident!r} not found")


def invalid_state(message: str) -> ChannelRequestError:
    return ChannelRequestError("invalid_state", message)


def invalid_input(message: str) -> ChannelRequestError:
    return ChannelRequestError("invalid_input", message)
