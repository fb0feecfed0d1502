"""Options: three spellings, Go and GNU forms, precedence flag > env > file > default, errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dnscock import config as config_module
from dnscock.config import Address, load_config


@pytest.fixture(autouse=True)
def no_system_config(monkeypatch, tmp_path):
    monkeypatch.setattr(config_module, "DEFAULT_CONFIG_FILE", str(tmp_path / "absent.conf"))


def test_defaults_are_the_seed_readme_ones():
    config = load_config([], {})
    assert config.listen == Address("", 53)
    assert config.docker_url == "unix:///var/run/docker.sock"
    assert config.domain == "docker"
    assert config.environment == ""
    assert config.nameservers == (Address("8.8.8.8", 53),)
    assert config.ttl == 0
    assert config.debug is False
    assert config.verbose is True
    assert config.timeout == 2.0


def test_docker_host_is_the_default_docker_url():
    assert load_config([], {"DOCKER_HOST": "tcp://127.0.0.1:2375"}).docker_url == "tcp://127.0.0.1:2375"
    config = load_config([], {"DOCKER_HOST": "tcp://127.0.0.1:2375", "DNSCOCK_DOCKER": "unix:///x.sock"})
    assert config.docker_url == "unix:///x.sock"


def test_the_go_default_docker_url_with_two_slashes_means_an_absolute_path():
    assert load_config(["-docker=unix://var/run/docker.sock"], {}).docker_url == "unix:///var/run/docker.sock"


@pytest.mark.parametrize(
    "argv",
    [
        ["-dns=127.0.0.1:5353", "-debug", "-ttl=7"],
        ["-dns", "127.0.0.1:5353", "-debug=true", "-ttl", "7"],
        ["--dns", "127.0.0.1:5353", "--debug", "--ttl", "7"],
        ["--dns=127.0.0.1:5353", "--debug=yes", "--ttl=7"],
    ],
)
def test_go_and_gnu_spellings(argv):
    config = load_config(argv, {})
    assert (config.listen, config.debug, config.ttl) == (Address("127.0.0.1", 5353), True, 7)


@pytest.mark.parametrize(("argv", "debug"), [(["-debug=false"], False), (["-debug", "false"], False),
                                             (["-debug"], True), ([], False)])
def test_boolean_forms(argv, debug):
    assert load_config(argv, {}).debug is debug


def test_nameservers_repeated_comma_separated_and_ipv6():
    config = load_config(["-nameserver=127.0.0.1:5301,127.0.0.1:5302", "-nameserver", "[::1]:5303", "-nameserver=::2"], {})
    assert config.nameservers == (
        Address("127.0.0.1", 5301), Address("127.0.0.1", 5302), Address("::1", 5303), Address("::2", 53),
    )


def test_nameservers_from_a_resolv_conf_never_list_dnscock_itself(tmp_path):
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("# comment\nnameserver 127.0.0.1\nnameserver 10.0.0.2 # office\nsearch example.com\n")
    config = load_config(["-dns=:53", f"-nameserver={resolv}"], {})
    assert config.nameservers == (Address("10.0.0.2", 53),)


def test_precedence_flag_over_env_over_file_over_default(tmp_path):
    conf = tmp_path / "dnscock.conf"
    conf.write_text("ttl = 10\ndomain = file.test\nenvironment = fromfile\n# comment\ndebug = true\n")
    env = {"DNSCOCK_CONFIG": str(conf), "DNSCOCK_TTL": "20", "DNSCOCK_DOMAIN": "env.test"}
    config = load_config(["-ttl=30"], env)
    assert config.ttl == 30  # flag
    assert config.domain == "env.test"  # env over file
    assert config.environment == "fromfile"  # file over default
    assert config.debug is True
    assert config.listen == Address("", 53)  # default


def test_the_system_config_file_is_read_when_present(monkeypatch, tmp_path):
    conf = tmp_path / "system.conf"
    conf.write_text("ttl = 11\n")
    monkeypatch.setattr(config_module, "DEFAULT_CONFIG_FILE", str(conf))
    assert load_config([], {}).ttl == 11


def test_the_sample_config_lists_every_option_and_parses_uncommented(tmp_path):
    sample = Path(__file__).resolve().parents[2] / "conf" / "dnscock.conf"
    text = sample.read_text()
    parser = config_module.build_parser({})
    names = {
        action.option_strings[-1][2:]
        for action in parser._actions
        if action.option_strings and action.dest not in ("help", "version", "config")
        and not action.option_strings[-1].startswith("--no-")  # a shortcut for "name = false"
    }
    for name in names:
        assert f"# {name} =" in text, f"conf/dnscock.conf does not show {name}"
    uncommented = tmp_path / "dnscock.conf"
    uncommented.write_text("\n".join(
        line[2:] for line in text.splitlines() if re.match(r"^# [a-z-]+ =", line)
    ))
    assert load_config(["--config", str(uncommented)], {}).domain == "docker"


@pytest.mark.parametrize(
    ("argv", "env", "fragment"),
    [
        (["-dns=:99999"], {}, "-dns"),
        (["-dns=nowhere:53"], {}, "-dns"),
        (["-ttl=soon"], {}, "-ttl"),
        (["-ttl=-1"], {}, "-ttl"),
        ([], {"DNSCOCK_TTL": "x"}, "-ttl"),
        (["-timeout=0"], {}, "-timeout"),
        (["-nameserver=1.2.3.4:70000"], {}, "-nameserver"),
        (["-domain=bad..name"], {}, "-domain"),
        (["-debug=maybe"], {}, "-debug"),
        (["-bogus=1"], {}, "-bogus"),
        (["--config=/nonexistent/dnscock.conf"], {}, "/nonexistent/dnscock.conf"),
    ],
)
def test_bad_values_stop_with_one_line_naming_the_option(argv, env, fragment, capsys):
    with pytest.raises(SystemExit) as stop:
        load_config(argv, env)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("dnscock: error: ")
    assert fragment in err


def test_an_unknown_option_in_the_config_file_is_named(tmp_path, capsys):
    conf = tmp_path / "dnscock.conf"
    conf.write_text("ttl = 5\nfrobnicate = 3\n")
    with pytest.raises(SystemExit) as stop:
        load_config(["--config", str(conf)], {})
    assert stop.value.code == 2
    assert "frobnicate" in capsys.readouterr().err


def test_the_readme_keeps_the_seeds_flags_and_points_at_every_option():
    """Users of the Go program look for its flags in the README; every other option is in docs/options.md."""
    root = Path(__file__).resolve().parents[2]
    readme = (root / "README.md").read_text()
    seed = (root.parent / "shared" / "spec" / "dnscock-readme.md")
    flags = re.findall(r"^(-[a-z]+)=", seed.read_text(), re.M) if seed.exists() else [
        "-dns", "-docker", "-domain", "-environment", "-help", "-nameserver", "-ttl", "-debug"]
    assert len(flags) >= 8
    for flag in flags:
        assert f"{flag}=" in readme, f"README does not show the seed's {flag}"
    assert "docs/options.md" in readme


@pytest.mark.parametrize(("text", "port"), [("bridge", 53), ("bridge:5353", 5353)])
def test_dns_on_the_default_bridge(text, port):
    assert load_config([f"-dns={text}"], {}).listen == Address("bridge", port)


def test_the_go_programs_help_false_is_accepted_and_help_prints_the_options(capsys):
    assert load_config(["-help=false", "-ttl=5"], {}).ttl == 5  # as the Go program: its default, spelled out
    for argv in (["-help"], ["-help=true"], ["--help"], ["-h"]):
        with pytest.raises(SystemExit) as stop:
            load_config(argv, {})
        assert stop.value.code == 0 and "usage: dnscock" in capsys.readouterr().out
    with pytest.raises(SystemExit) as stop:
        load_config(["-help=maybe"], {})
    assert stop.value.code == 2 and "-help" in capsys.readouterr().err
