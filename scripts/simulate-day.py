#!/usr/bin/env python3
"""A simulated day of review-app traffic, time compressed, against a real paastis engine.

A seeded trace of visits over N review apps (local processes, the embedded default) is
replayed against the engine: each visit is a burst of requests during working hours, some
apps get several visits, some none. Meanwhile the admin API is polled for every app's state.
At the end the engine's savings report is compared with the trace's ground truth.

It checks, and exits non-zero when one fails:
  1. zero failed requests (every request answered 200 by its own app);
  2. every app is asleep whenever it was idle longer than its max idle (plus the idle
     check's period and the stop itself: SLACK_S);
  3. the savings report (hours asleep, money, CO2e) matches the ground truth: each sleep
     runs from last activity + max_idle to the next request (or the end), and the engine may
     lag each one by at most SLACK_S.

Usage: scripts/simulate-day.py [--binary target/release/paastis] [--apps 20]
       [--day-seconds 120] [--max-idle 2.5] [--seed 1] [--json]
"""
import argparse
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import datetime, timezone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UPSTREAM = os.path.join(ROOT, "tests", "support", "upstream.py")
TOKEN = "simulated-day-token"
# The idle check runs every second; a stop (SIGTERM to a Python server) takes well under
# half a second. An app must be asleep this long after its max idle at the latest.
SLACK_S = 1.6
# The engine closes a client's keep-alive connection idle this long (proxy.header_read_timeout).
KEEPALIVE_IDLE_S = 10.0
PRICE_PER_HOUR = 0.02  # EUR per container-hour (configured for the run)
GCO2E_PER_HOUR = 0.5


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def trace(apps, day_s, seed):
    """Visits per app: lists of request offsets (seconds from the day's start).

    Working hours are 09:00-19:00 of the simulated day; a visit is 3 to 25 requests a few
    simulated minutes apart. A quarter of the apps get no visit at all (stale review apps).
    """
    rng = random.Random(seed)
    minute = day_s / (24 * 60)
    plan = {}
    for index in range(apps):
        name = f"review-pr{100 + index}"
        times = []
        if rng.random() >= 0.25:
            for _ in range(rng.randint(1, 4)):
                start = rng.uniform(9 * 60, 18 * 60) * minute
                at = start
                for _ in range(rng.randint(3, 25)):
                    times.append(at)
                    at += rng.uniform(0.2, 4.0) * minute
        plan[name] = sorted(times)
    return plan


def iso(ts):
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def api(admin, path):
    request = urllib.request.Request(
        f"http://{admin}{path}", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def wait_ready(admin, deadline):
    while time.time() < deadline:
        try:
            api(admin, "/api/v1/apps")
            return True
        except Exception:
            time.sleep(0.1)
    return False


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "paastis"))
    parser.add_argument("--apps", type=int, default=20)
    parser.add_argument("--day-seconds", type=float, default=120.0)
    parser.add_argument("--max-idle", type=float, default=2.5, help="real seconds")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    if not os.path.exists(args.binary):
        sys.exit(f"no binary at {args.binary} (cargo build --release, or --binary PATH)")

    scale = 86400.0 / args.day_seconds  # simulated seconds per real second
    plan = trace(args.apps, args.day_seconds, args.seed)
    work = tempfile.mkdtemp(prefix="paastis-day-")
    listen, admin = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    apps_yaml = "".join(
        f"      - {{name: {name}, command: \"exec python3 {UPSTREAM}\", env: {{APP_NAME: {name}}}}}\n"
        for name in plan
    )
    config = os.path.join(work, "paastis.yml")
    with open(config, "w") as f:
        f.write(
            f"listen: {listen}\n"
            f"defaults: {{max_idle: {int(args.max_idle * 1000)}ms, wake_timeout: 20s}}\n"
            f"admin: {{listen: {admin}, token: {TOKEN}}}\n"
            f"database: {{url: 'sqlite://{work}/paastis.db'}}\n"
            f"savings: {{prices: {{process: {{'*': {PRICE_PER_HOUR}}}}}, currency: EUR, "
            f"gco2e_per_container_hour: {GCO2E_PER_HOUR}}}\n"
            "providers:\n  - id: local\n    type: process\n    apps:\n" + apps_yaml
        )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAASTIS_")}
    env["LOG_LEVEL"] = "warn"
    engine = subprocess.Popen(
        [args.binary, "serve", "--config", config],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(os.path.join(work, "engine.log"), "w"),
    )
    try:
        if not wait_ready(admin, time.time() + 30):
            sys.exit("the engine did not start (see its log in " + work + ")")
        result = run_day(args, plan, listen, admin, scale)
    finally:
        engine.send_signal(signal.SIGTERM)
        try:
            engine.wait(timeout=30)
        except subprocess.TimeoutExpired:
            engine.kill()
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        report(result)
    ok = result["failed_requests"] == 0 and result["late_samples"] == 0 and result["savings_match"]
    shutil.rmtree(work, ignore_errors=True)
    sys.exit(0 if ok else 1)


def run_day(args, plan, listen, admin, scale):
    lock = threading.Lock()
    # Per app: (start, end) of every request, and the failures.
    done = {name: [] for name in plan}
    failures = []
    retried = []  # idle keep-alive connections closed by the engine, sent again
    states = []  # (asked at, answered at, {app: state})
    day_start = time.time() + 0.5
    day_end = day_start + args.day_seconds
    stop_sampling = threading.Event()

    def visitor(name, offsets):
        connection = None
        last_used = 0.0
        for offset in offsets:
            delay = day_start + offset - time.time()
            if delay > 0:
                time.sleep(delay)
            started = time.time()
            for attempt in (1, 2):
                reused = connection is not None
                try:
                    if connection is None:
                        connection = http.client.HTTPConnection(listen, timeout=30)
                    connection.request("GET", "/", headers={"Host": f"{name}.localhost"})
                    answer = connection.getresponse()
                    body = answer.read().decode(errors="replace")
                    if answer.status != 200 or body != f"hello from {name}":
                        with lock:
                            failures.append((name, answer.status, body[:120]))
                    break
                except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as error:
                    connection = None
                    # A keep-alive connection the engine closed while idle (after
                    # proxy.header_read_timeout): sent again on a new one, as browsers and
                    # HTTP libraries do for a GET. Never twice, never on a fresh connection.
                    if reused and attempt == 1 and started - last_used >= KEEPALIVE_IDLE_S - 1:
                        with lock:
                            retried.append(name)
                        continue
                    with lock:
                        failures.append((name, "error", str(error)))
                except Exception as error:  # a refused connection, a timeout: a failure
                    connection = None
                    with lock:
                        failures.append((name, "error", str(error)))
                    break
            last_used = time.time()
            with lock:
                done[name].append((started, last_used))

    def sampler():
        while not stop_sampling.is_set():
            at = time.time()
            try:
                listing = api(admin, "/api/v1/apps")
                # The states are read somewhere between `at` and now: a request that began
                # in that window may already have woken its app.
                states.append((at, time.time(), {a["name"]: a["state"] for a in listing["apps"]}))
            except Exception:
                pass
            stop_sampling.wait(0.25)

    threads = [threading.Thread(target=visitor, args=(n, o)) for n, o in plan.items()]
    sampling = threading.Thread(target=sampler)
    sampling.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Let the day end and the last apps fall asleep.
    time.sleep(max(0.0, day_end - time.time()))
    stop_sampling.set()
    sampling.join()
    period_end = day_end

    # 2. asleep whenever idle longer than max idle (+ slack).
    checked = late = 0
    late_examples = []
    for at, read_by, snapshot in states:
        for name, requests in done.items():
            if not requests or name not in snapshot:
                continue
            before = [end for (start, end) in requests if start <= at]
            if not before or any(start <= read_by and at <= end for (start, end) in requests):
                continue
            idle = at - max(before)
            if idle > args.max_idle + SLACK_S:
                checked += 1
                if snapshot[name] not in ("asleep", "stopping"):
                    late += 1
                    if len(late_examples) < 5:
                        late_examples.append((name, round(idle, 2), snapshot[name]))

    # 3. ground truth: each sleep from last activity + max_idle to the next request.
    truth_s = 0.0
    sleeps = 0
    for name, requests in done.items():
        requests.sort()
        for index, (start, end) in enumerate(requests):
            asleep_from = end + args.max_idle
            # Activity is the latest end so far (requests of one visitor do not overlap).
            next_start = requests[index + 1][0] if index + 1 < len(requests) else period_end
            if next_start > asleep_from:
                truth_s += next_start - asleep_from
                sleeps += 1
    saved = api(
        admin,
        f"/api/v1/savings?from={iso(day_start - 60)}&to={iso(period_end)}",
    )
    measured_s = saved["total"]["hours_asleep"] * 3600
    money = sum(m["amount"] for m in saved["total"]["money"] if m["currency"] == "EUR")
    bound_s = sleeps * SLACK_S
    money_expected = measured_s / 3600 * PRICE_PER_HOUR
    savings_match = (
        measured_s <= truth_s + 0.05 * max(sleeps, 1)
        and truth_s - measured_s <= bound_s
        and abs(money - money_expected) <= 1e-4 + 1e-3 * money_expected
        and abs(saved["total"]["gco2e"] - measured_s / 3600 * GCO2E_PER_HOUR) <= 1e-5
    )
    requests = sum(len(r) for r in done.values())
    return {
        "apps": len(plan),
        "visited_apps": sum(1 for r in done.values() if r),
        "requests": requests,
        "failed_requests": len(failures),
        "failures": failures[:5],
        "resent_on_closed_keepalive": len(retried),
        "state_samples_checked": checked,
        "late_samples": late,
        "late_examples": late_examples,
        "sleeps": sleeps,
        "day_seconds": args.day_seconds,
        "scale": scale,
        "max_idle_simulated_minutes": round(args.max_idle * scale / 60, 1),
        "truth_hours_simulated": round(truth_s * scale / 3600, 2),
        "measured_hours_simulated": round(measured_s * scale / 3600, 2),
        "lag_per_sleep_s": round((truth_s - measured_s) / sleeps, 3) if sleeps else 0.0,
        "bound_per_sleep_s": SLACK_S,
        "money_eur_real": round(money, 6),
        "money_eur_simulated": round(saved["total"]["container_hours"] * PRICE_PER_HOUR * scale, 2),
        "money_eur_simulated_truth": round(truth_s / 3600 * PRICE_PER_HOUR * scale, 2),
        "gco2e_simulated": round(saved["total"]["gco2e"] * scale, 1),
        "savings_match": savings_match,
    }


def report(r):
    print(f"apps: {r['apps']} ({r['visited_apps']} visited), requests: {r['requests']}, "
          f"failed: {r['failed_requests']} (sent again on an idle keep-alive connection the "
          f"engine had closed: {r['resent_on_closed_keepalive']})")
    for failure in r["failures"]:
        print("  failure:", failure)
    print(f"state samples where an app was idle past max_idle + {SLACK_S}s: "
          f"{r['state_samples_checked']}, not asleep: {r['late_samples']}")
    for example in r["late_examples"]:
        print("  late:", example)
    print(f"day compressed x{r['scale']:.0f} into {r['day_seconds']:.0f}s; "
          f"max idle = {r['max_idle_simulated_minutes']} simulated minutes")
    print(f"hours asleep (simulated): ground truth {r['truth_hours_simulated']}, "
          f"report {r['measured_hours_simulated']} over {r['sleeps']} sleeps "
          f"(lag {r['lag_per_sleep_s']}s per sleep, bound {r['bound_per_sleep_s']}s)")
    print(f"money (simulated day): {r['money_eur_simulated']} EUR at {PRICE_PER_HOUR} EUR/h "
          f"(ground truth {r['money_eur_simulated_truth']}); "
          f"CO2e: {r['gco2e_simulated']} g at {GCO2E_PER_HOUR} g/h")
    print("savings match the ground truth:", "yes" if r["savings_match"] else "NO")


if __name__ == "__main__":
    main()
