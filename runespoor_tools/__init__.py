"""Runespoor's commands: the `runespoor` CLI (cli.py) and one module per offline job — train, evaluate,
report, profile, bench (+ bench_ros), demo (+ monitor, run_analysis) and bag. They are applications on top of
the library packages (runespoor_common, runespoor_edge, runespoor_cloud); the library never imports them."""
