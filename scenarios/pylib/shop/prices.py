"""Price lookups cached in module globals: one unbounded, one bounded."""

import functools

# Leaky: a module-level list used as a cache. Nothing ever removes entries.
_seen_quotes = []


def quote_leaky(order_id):
    quote = {"order": order_id, "price": order_id * 1.07}
    _seen_quotes.append(quote)
    return quote["price"]


# Fixed: a dict keyed by a bounded set of products.
_quotes_by_product = {}


def quote_fixed(order_id):
    product = order_id % 50
    quote = _quotes_by_product.get(product)
    if quote is None:
        quote = _quotes_by_product[product] = {"product": product, "price": product * 1.07}
    return quote["price"]


@functools.lru_cache(maxsize=None)
def tax_unbounded(amount_cents):
    """Leaky: an unbounded lru_cache on an ever-growing key space."""
    return round(amount_cents * 0.2)


@functools.lru_cache(maxsize=64)
def tax_bounded(amount_cents):
    """Fixed: the same cache with a bound; it fills once, then stays the same size."""
    return round(amount_cents * 0.2)
