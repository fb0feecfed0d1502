"""The table of options is the one place: the parser, --help, the *Options objects, the sample config and
docs/options.md all read it."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pytest

from dnscock import options
from dnscock.config import build_parser, load_config
from dnscock.docker_watcher import WatchOptions
from dnscock.naming import NamingOptions
from dnscock.options import OPTIONS, default
from dnscock.pipeline import PipelineOptions
from dnscock.swarm_watcher import SwarmOptions
from dnscock.values import number

ROOT = Path(__file__).resolve().parents[2]


def test_docs_options_md_is_generated_from_the_table():
    assert (ROOT / "docs" / "options.md").read_text() == options.options_markdown(), \
        "docs/options.md differs from dnscock/options.py: python -m dnscock.options docs > docs/options.md"


def test_the_sample_config_is_generated_from_the_table():
    assert (ROOT / "conf" / "dnscock.conf").read_text() == options.sample_config(), \
        "conf/dnscock.conf differs from dnscock/options.py: python -m dnscock.options conf > conf/dnscock.conf"


def test_the_parser_has_exactly_the_tables_options_with_their_three_spellings():
    parser = build_parser({})
    spelled = {action.option_strings[-1][2:]: action for action in parser._actions
               if action.option_strings and action.dest not in ("help", "version", "config")
               and not action.option_strings[-1].startswith("--no-")}
    assert sorted(spelled) == sorted(option.name for option in OPTIONS)
    for option in OPTIONS:
        action = spelled[option.name]
        assert action.option_strings == [f"-{option.name}", f"--{option.name}"]
        assert action.env_var == option.env_var
        assert option.help in action.help


@pytest.mark.parametrize("option", OPTIONS, ids=lambda option: option.name)
def test_every_default_is_what_load_config_gives_without_options(option, monkeypatch, tmp_path):
    from dnscock import config as config_module

    monkeypatch.setattr(config_module, "DEFAULT_CONFIG_FILE", str(tmp_path / "absent.conf"))
    config = load_config([], {})
    field = {"dns": "listen", "docker": "engines", "nameserver": "nameservers", "network": "networks"}.get(
        option.name, option.attribute)
    if option.kind == options.LIST:
        return  # computed from several sources (checked in test_config)
    assert getattr(config, field) == default(option.name)


def test_the_options_objects_start_from_the_tables_defaults():
    pairs = [
        (PipelineOptions(), {"udp_payload": "udp-payload", "forward_pool": "forward-pool",
                             "sync_timeout": "sync-timeout", "cache_size": "cache-size",
                             "local_cache_size": "local-cache-size", "allow_from": "allow-from",
                             "rate_limit": "rate-limit", "rate_limit_slip": "rate-limit-slip",
                             "split_horizon": "split-horizon", "query_log": "query-log",
                             "log_queries": "log-queries"}),
        (WatchOptions(), {"serve_unhealthy": "serve-unhealthy", "grace": "grace",
                          "resync_interval": "resync-interval"}),
        (SwarmOptions(), {"poll_interval": "swarm-poll"}),
        (NamingOptions(), {"host_ip": "host-ip", "compose_names": "compose-names",
                           "container_names": "container-names", "network_aliases": "network-aliases",
                           "hostnames": "hostnames", "proxy_names": "proxy-names"}),
    ]
    for instance, names in pairs:
        for field, name in names.items():
            assert getattr(instance, field) == default(name), (type(instance).__name__, field)
        assert {f.name for f in dataclasses.fields(instance)} >= set(names)


def test_help_shows_each_default(capsys):
    with pytest.raises(SystemExit):
        build_parser({}).parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: 1232)" in text and "(default: every network)" in text and "(default: 10.0)" in text


@pytest.mark.parametrize(("parse", "text", "value", "message"), [
    (number(int, "whole number of seconds", 0, 2**31 - 1), "2147483647", 2**31 - 1, ""),
    (number(int, "whole number of seconds", 0, 2**31 - 1), "2147483648", None, "(0 to 2147483647)"),
    (number(int, "whole number of seconds", 0, 2**31 - 1), "-1", None, "(0 to 2147483647)"),
    (number(int, "whole number", above_low=True), "0", None, "is not a whole number (more than 0)"),
    (number(int, "whole number"), "0", 0, ""),
    (number(int, "whole number"), "1.5", None, "(0 or more)"),
    (number(float, "number of seconds", above_low=True), "0.25", 0.25, ""),
    (number(float, "number of seconds", above_low=True), "nan", None, "(more than 0)"),
    (number(float, "number of seconds"), "inf", None, "(0 or more)"),
    (number(int, "number of bytes", 512, 4096), "511", None, "'511' is not a number of bytes (512 to 4096)"),
])
def test_one_helper_reads_numbers_with_a_range(parse, text, value, message):
    if value is None:
        with pytest.raises(argparse.ArgumentTypeError) as error:
            parse(text)
        assert message in str(error.value)
    else:
        assert parse(text) == value


def test_the_query_path_imports_no_option_parser():
    import subprocess
    import sys

    code = ("import sys, dnscock.pipeline, dnscock.server, dnscock.upstream, dnscock.access; "
            "print('configargparse' in sys.modules, 'dnscock.config' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert result.stdout.split() == ["False", "False"]


def test_the_app_hands_each_option_to_the_objects_that_use_it(monkeypatch, tmp_path):
    from dnscock import app
    from dnscock import config as config_module

    monkeypatch.setattr(config_module, "DEFAULT_CONFIG_FILE", str(tmp_path / "absent.conf"))
    config = load_config(["-udp-payload=4096", "-container-names", "-grace=0", "-host-name=gw", "-network=a,b",
                          "-query-log", "-http=127.0.0.1:0", "-docker=unix:///x.sock?address=published"], {})
    pipeline = app.pipeline_options(config)
    assert (pipeline.udp_payload, pipeline.query_log, pipeline.counters) == (4096, 1000, True)
    (watch,) = app.check_config(config)
    assert (watch.grace, watch.host_name, watch.naming.container_names) == (0.0, "gw", True)
    assert (watch.naming.networks, watch.naming.engine, watch.naming.engine_address) == (
        frozenset({"a", "b"}), "unix:///x.sock", "published")
    assert app.pipeline_options(load_config([], {})).counters is False, "no -http: nobody reads the counters"
