"""The benchmark of dnscock against dnsmasq and the ceiling (``python -m bench.run``), the soak test
(``python -m bench.soak``) and the measuring sticks (``bench.ceiling``, ``bench.path_cost``,
``bench.udp_send_cost``); see bench/README.md."""
