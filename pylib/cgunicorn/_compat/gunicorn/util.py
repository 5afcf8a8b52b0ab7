"""gunicorn.util: the helpers of cgunicorn.util under Gunicorn's name."""
from cgunicorn.util import bytes_to_str, get_arity, import_app, is_ipv6, parse_address, warn

__all__ = ["bytes_to_str", "get_arity", "import_app", "is_ipv6", "parse_address", "warn"]
