"""The curated public surface: ``__all__`` is exact and every name the design promises exists."""

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
    submodules |= {"observability", "backoff"}
    assert set(framework.__all__) == public - submodules - {"testing", "cli", "asyncapi"}
    assert set(framework.__all__) >= PROMISED
