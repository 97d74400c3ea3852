"""The curated public surface: ``__all__`` is exact and every name the design promises exists."""

import inspect

import framework

PROMISED = {
    "module", "injectable", "controller", "Scope", "Provider", "Inject", "InjectionToken",
    "message_pattern", "event_pattern", "MessageContext", "RpcException", "get", "post", "sse",
    "use_guards", "use_interceptors", "use_filters", "websocket_gateway", "subscribe_message",
    "create_app", "ClientProxy", "DynamicModule", "forward_ref",
}  # fmt: skip


def test_all_lists_exactly_the_public_names() -> None:
    # (pytest adds "@py_*" names to modules it rewrites, such as its plugins.)
    public = {n for n in dir(framework) if not n.startswith(("_", "@"))}
    submodules = {"application", "clients", "di", "exceptions", "http", "messaging", "transports"}
    submodules |= {"observability", "backoff", "rx", "inbound"}
    assert set(framework.__all__) == public - submodules - {"testing", "cli", "asyncapi", "config"}
    assert set(framework.__all__) >= PROMISED


TRANSPORT_AUTHOR_API = {
    "Transport", "ClientProxy", "PublishRelay", "TransportHost", "Router", "MessageHandler",
    "MessageContext", "Dispatcher", "Inbound", "Outcome", "Reply", "Stream", "Failure",
    "NOT_FOUND", "Handled", "Respond", "drive", "is_stream", "error_payload", "encode",
    "decode", "is_wildcard", "load_transport", "available_transports", "transport_class",
}  # fmt: skip


def test_transport_authors_get_the_dispatcher_and_the_stream_driver() -> None:
    import framework.transports as transports

    public = {n for n in dir(transports) if not n.startswith(("_", "@"))}
    modules = {n for n in public if inspect.ismodule(getattr(transports, n))}
    assert set(transports.__all__) == public - modules
    assert set(transports.__all__) >= TRANSPORT_AUTHOR_API
    assert "run_event_handlers" not in public, "events go through Dispatcher.event"
