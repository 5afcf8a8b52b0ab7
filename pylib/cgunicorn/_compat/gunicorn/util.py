"""gunicorn.util: the helpers of cgunicorn.util under Gunicorn's name."""
from cgunicorn.util import (bytes_to_str, get_arity, import_app, is_ipv6, load_class,
                            make_fail_app, parse_address, warn, write_error)

__all__ = ["bytes_to_str", "get_arity", "import_app", "is_ipv6", "load_class", "make_fail_app",
           "parse_address", "warn", "write_error"]
