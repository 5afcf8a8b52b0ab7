"""A real-world style config used as `-c python:conf_module_form`: trust a
proxy's X-Forwarded-Proto header, from any address."""

workers = 1
forwarded_allow_ips = "*"
secure_scheme_headers = {"X-FORWARDED-PROTO": "https"}
limit_request_fields = 50
