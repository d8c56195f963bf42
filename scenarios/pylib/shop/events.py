"""A callback registry: handlers are kept until unsubscribed."""

_handlers = []


def subscribe(handler):
    _handlers.append(handler)
    return handler


def unsubscribe(handler):
    _handlers.remove(handler)


def publish(event):
    for handler in list(_handlers):
        handler(event)


def ping():
    """Publishes to whoever listens; with nobody subscribed it keeps nothing."""
    publish("ping")


class Request:
    """Something a handler closes over: a request with its body."""

    def __init__(self, number):
        self.number = number
        self.body = bytearray(256)

    def on_event(self, event):
        return (self.number, event)


def handle_request_leaky(number):
    """Subscribes a closure per request and never unsubscribes: every Request stays alive."""
    request = Request(number)
    subscribe(lambda event: request.on_event(event))
    publish("tick") if number % 100 == 0 else None


def handle_request_fixed(number):
    """Same, but the handler is removed when the request is done."""
    request = Request(number)
    handler = subscribe(lambda event: request.on_event(event))
    try:
        return request.on_event("done")
    finally:
        unsubscribe(handler)
