"""Prints, as JSON, what Python code sees of a Config: how set() refuses
values (exception class and message), attribute access, Setting objects
and the derived properties. CG_API_MODULE picks gunicorn.config (the shims)
or cgunicorn.config."""
import importlib
import json
import os
import sys

config = importlib.import_module(os.environ.get("CG_API_MODULE", "cgunicorn.config"))

REFUSALS = [
    ("workers", "x"), ("workers", -1), ("workers", None), ("workers", 2.5),
    ("bogus", 1), ("reload", "maybe"), ("reload", 3), ("bind", 3),
    ("post_fork", "lambda-1"), ("post_fork", "nomod_cg_api.fn"), ("post_fork", "os.nofn"),
    ("post_fork", "nodots"), ("post_fork", 3), ("post_request", "lambda-1"),
    ("chdir", "/nonexistent-cg-api"), ("user", "no-such-user-cg-api"),
    ("group", "no-such-group-cg-api"), ("secure_scheme_headers", "x"),
    ("forwarded_allow_ips", "1.2.3.4/8"), ("forwarded_allow_ips", 5),
    ("errorlog", 5), ("reload_extra_files", ["/nonexistent-cg-api"]),
    ("http2_max_frame_size", 5), ("proxy_protocol", "bogus"), ("statsd_host", "a:b:c"),
    ("reload_engine", "bogus"), ("logconfig_dict", [1]), ("raw_env", 5),
]


def value_of(v):
    return (lambda a: None) if v == "lambda-1" else v


def refusal(cfg, name, value):
    try:
        cfg.set(name, value_of(value))
    except Exception as e:
        return [type(e).__name__, str(e)]
    return ["accepted", repr(cfg.get(name))]


def attempt(fn):
    try:
        return ["ok", fn()]
    except Exception as e:
        return [type(e).__name__, str(e)]


def main():
    cfg = config.Config()
    out = {"refusals": [[n, repr(v)] + refusal(cfg, n, v) for n, v in REFUSALS]}
    out["defaults"] = {
        "workers": cfg.workers, "bind": cfg.bind, "address": cfg.address,
        "worker_class_str": cfg.worker_class_str, "proc_name": cfg.proc_name,
        "settings_workers_value": cfg.settings["workers"].value,
        "setting_names_first": list(cfg.settings)[:5],
        "n_settings": len(cfg.settings),
        "workers_cli": cfg.settings["workers"].cli,
        "workers_section": cfg.settings["workers"].section,
        "str_has_workers": "workers" in str(cfg),
        "sendfile": cfg.sendfile,
        "env": cfg.env,
    }
    cfg.set("workers", "0x5")
    cfg.settings["threads"].set(4)
    cfg.set("bind", ["127.0.0.1:9001", "unix:/tmp/cg-api.sock", "[::1]:81", "fd://3",
                     "tcp://LocalHost:7", "example.org"])
    cfg.set("raw_env", ["A=1", "B=x=y"])
    cfg.set("proc_name", "named")
    out["after"] = {
        "workers": cfg.workers, "settings_workers_value": cfg.settings["workers"].value,
        "settings_workers_get": cfg.settings["workers"].get(),
        "address": cfg.address, "worker_class_str": cfg.worker_class_str,
        "worker_class": cfg.worker_class.__name__, "env": cfg.env, "proc_name": cfg.proc_name,
    }
    out["attribute_unknown"] = attempt(lambda: cfg.no_such_setting)
    out["attribute_assign"] = attempt(lambda: setattr(cfg, "workers", 2))
    opts = cfg.parser().parse_args(["-w", "3", "-b", ":1", "-b", "unix:/x", "--no-sendfile",
                                    "-u", "nobody", "-m", "022", "app:app"])
    out["parsed"] = {k: v for k, v in vars(opts).items() if v is not None}
    os.environ.pop("GUNICORN_CMD_ARGS", None)
    out["cmd_args_from_env"] = cfg.get_cmd_args_from_env()
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
