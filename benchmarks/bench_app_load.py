"""The app under load (issue 28): one user's journey alone, then N users at once, timed in Chromium.

Journey: open, Explore, open a sample, switch a concept off, Edit, pick the class, pick the concept,
Preview, Apply, Undo, Versions. Each step is timed twice:

* **in the browser**, from the action to its content visible and the page settled (Streamlit's status
  widget gone, nothing stale, checked after a 0.3 s pause as ``tests/app/browser_pages.py`` does, so no
  browser time reads below 0.3 s);
* **on the server's side**, from the first script run the action started to the last one finishing,
  over that session's runs (the app logs each run's start and length when ``CBM_APP_SERVER_TIMINGS``
  names a file; see ``cbm.app.streamlit_app.run_timed``). This leaves out the browser's own work and
  the 0.3 s pause, and is what the concurrent goal is measured on.

* **alone**: one headless Chromium session; a first pass warms the server's caches (its times are
  kept as ``alone.warmup_per_step``), then a timed pass in a new session.
* **concurrent**: N sessions at once (default 8, ``--quick`` 2), each its own browser context in one
  Chromium (``--disable-gpu``, background throttling left on), all on one server. Each session edits
  its own concept of the class (the i-th largest weight), so the N previews are N different edits on a
  head that the others keep changing: every preview refits its baselines, as it would for N users.
  Apply and undo go through the model directory's shared edit history.

With ``--pin`` (the default on a machine of 2 cores or more) the concurrent phase runs the server on
core 0 and the clients (the Playwright driver and Chromium) on the others, so the clients cannot take
the server's CPU: the server-side times then measure the app on one core, the browser-side times both.
The alone phase shares every core. ``--no-pin`` shares every core throughout.

The clients' CPU share is read from ``/proc`` (utime + stime of every process, sampled every 0.25 s
so processes that exit still count): Chromium and the Playwright driver vs the Streamlit server, and
both against the machine's total busy time over the same window (other work on the machine included).

Needs the quick demo model: built once with :func:`cbm.demo.pipeline.run_demo` (``quick_config``) under
the ignored ``benchmarks/.app_load/``; each run serves a fresh copy. Writes
``benchmarks/results/app_load.json`` (``app_load_quick.json`` with ``--quick``). Measured, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "tests" / "app"))
from _harness import write_result  # noqa: E402
from browser_pages import CHROMIUM_ARGS, free_port, stop, wait_healthy  # noqa: E402

WORK = HERE / ".app_load"
GOALS_S = {"alone_first_page": 2.0, "alone_step": 1.0, "concurrent_p95": 2.0, "failures": 0}
WAIT_MS = 120_000  # generous: under load a step may be slow; a step that never shows is a failure
STEPS = ("open", "Explore", "open a sample", "switch a concept off", "Edit", "pick the class",
         "pick the concept", "Preview", "Apply", "Undo", "Versions")


# -- the model ------------------------------------------------------------------------------------
def demo_model() -> tuple[Path, str, list[str]]:
    """The quick demo's model directory (built once), its confounded class and that class's concepts
    by decreasing |weight| (the demo's artifact first)."""
    import numpy as np

    from cbm.demo import ARTIFACT
    from cbm.demo.pipeline import quick_config, run_demo
    from cbm.io import load_model

    cfg = quick_config(out_dir=WORK / "demo", cache_dir=WORK / "cache")
    marker = WORK / "model_dir.txt"
    if not marker.is_file() or not Path(marker.read_text().strip()).is_dir():
        print("building the quick demo model (once)...", file=sys.stderr)
        result = run_demo(cfg, progress=False, log=lambda s: None)
        marker.write_text(str(result.model_dir))
    src = Path(marker.read_text().strip())
    cls = cfg.confound.confounded_class
    model = load_model(src)
    k = list(model.class_names_).index(cls)
    order = [model.concept_names_[j] for j in np.argsort(-np.abs(model.coef_[k])) if model.coef_[k, j] != 0]
    concepts = [ARTIFACT] + [c for c in order if c != ARTIFACT]
    return src, cls, concepts


def fresh_copy(src: Path) -> Path:
    """A copy of the model directory (edits write into it) with the black box the baselines read."""
    run = WORK / "run"
    shutil.rmtree(run, ignore_errors=True)
    dst = run / "model"
    shutil.copytree(src, dst)
    black_box = src.parent / "models" / "linear-probe"
    if black_box.is_dir():
        shutil.copytree(black_box, run / "models" / "linear-probe")
    return dst


# -- CPU time from /proc ----------------------------------------------------------------------------
TICK = os.sysconf("SC_CLK_TCK")


def _procs() -> dict[int, tuple[int, str, float]]:
    """pid -> (ppid, name, cpu seconds) for every readable process."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            raw = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        name = raw[raw.index("(") + 1: raw.rindex(")")]
        f = raw[raw.rindex(")") + 2:].split()
        out[int(d)] = (int(f[1]), name, (int(f[11]) + int(f[12])) / TICK)
    return out


def _machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = f[3] + f[4]
    return (sum(f[:8]) - idle) / TICK, sum(f[:8]) / TICK


def process_tree(procs: dict[int, tuple[int, str, float]], root: int) -> set[int]:
    """``root`` and every process descended from it, in a :func:`_procs` snapshot."""
    kids: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in procs.items():
        kids.setdefault(ppid, []).append(pid)
    seen, todo = set(), [root]
    while todo:
        p = todo.pop()
        if p not in seen:
            seen.add(p)
            todo.extend(kids.get(p, []))
    return seen


class CpuMeter:
    """CPU seconds used during a window by the server's process tree and by the clients (every other
    descendant of this process: the Playwright driver and Chromium), sampled in a thread."""

    def __init__(self, server_pid: int):
        self.server_pid, self.me = server_pid, os.getpid()
        self.start: dict[int, float] = {}
        self.last: dict[int, tuple[str, float]] = {}
        self._stop = threading.Event()

    def _sample(self) -> None:
        procs = _procs()
        server = process_tree(procs, self.server_pid)
        for pid in process_tree(procs, self.me) - {self.me}:
            if pid in procs:
                who = "server" if pid in server else "clients"
                self.start.setdefault(pid, procs[pid][2] if self._started else 0.0)
                self.last[pid] = (who, procs[pid][2])

    def __enter__(self):
        self._started = True
        self._sample()  # processes alive now count from here
        self._started = False  # processes born later count from zero
        self.m0, self.t0 = _machine_busy(), time.monotonic()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(0.25):
            self._sample()

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._sample()
        busy1, total1 = _machine_busy()
        used = {"server": 0.0, "clients": 0.0}
        for pid, (who, cpu) in self.last.items():
            used[who] += max(0.0, cpu - self.start.get(pid, 0.0))
        wall = time.monotonic() - self.t0
        machine = busy1 - self.m0[0]
        self.result = {
            "wall_s": round(wall, 1),
            "server_cpu_s": round(used["server"], 1),
            "clients_cpu_s": round(used["clients"], 1),
            "clients_share_of_app_cpu": round(used["clients"] / max(1e-9, sum(used.values())), 3),
            "machine_busy_cpu_s": round(machine, 1),
            "other_processes_cpu_s": round(max(0.0, machine - sum(used.values())), 1),
            "cores": os.cpu_count(),
        }
        return False


def pin_cores(server_pid: int) -> None:
    """The server's process tree on core 0, every other process this one started (the Playwright
    driver, Chromium) on the other cores, from now on."""
    procs = _procs()
    server = process_tree(procs, server_pid)
    others = set(range(os.cpu_count())) - {0}
    for pid in process_tree(procs, os.getpid()):
        try:
            os.sched_setaffinity(pid, {0} if pid in server else others)
        except OSError:
            pass  # exited meanwhile


# -- one user's journey, timed in the browser ------------------------------------------------------------
async def settle(page) -> None:
    await page.wait_for_timeout(300)
    await page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=WAIT_MS)
    await page.wait_for_selector('[data-stale="true"]', state="detached", timeout=WAIT_MS)


async def nav(page, title: str) -> None:
    await page.locator('[data-testid="stSidebarNav"] a', has_text=title).first.click()
    await page.wait_for_selector(f'h1:has-text("{title}")', timeout=WAIT_MS)
    await settle(page)


async def choose(page, key: str, option: str) -> None:
    await page.locator(f".st-key-{key} input").click()
    await page.keyboard.type(option)  # long option lists are virtualised: type to filter, then pick
    await page.get_by_role("option", name=option, exact=True).click()
    await settle(page)


async def flash(page, expected: str) -> None:
    """Wait for the Edit page's message after Apply/Undo; an error message is a failure."""
    alert = page.locator('[data-testid="stAlert"]', has_text=expected)
    error = page.locator('[data-testid="stAlertContentError"]')
    await alert.or_(error).first.wait_for(timeout=WAIT_MS)
    if not await alert.count():
        raise RuntimeError(f"expected {expected!r}, the page says {await error.first.inner_text()!r}")
    await settle(page)


async def journey(browser, url: str, cls: str, concept: str) -> dict:
    """Walk the journey in a new browser context: seconds per step, each step's wall-clock window (for
    the server's log), the server's session id and the first failure if any."""
    ctx = await browser.new_context(viewport={"width": 1366, "height": 1500})
    ctx.set_default_timeout(WAIT_MS)  # a click on a slow page is a slow step, not a failure
    page = await ctx.new_page()
    times: dict[str, float] = {}
    windows: dict[str, tuple[float, float]] = {}

    async def step(name, action):
        w0, t0 = time.time(), time.perf_counter()
        await action()
        times[name] = round(time.perf_counter() - t0, 3)
        windows[name] = (w0, time.time())

    async def open_page():
        await page.goto(url)
        await page.wait_for_selector('h1:has-text("Model")', timeout=WAIT_MS)
        await settle(page)

    async def open_sample():
        await page.locator(".st-key-explore_open_0 button").click()
        await page.wait_for_selector("text=Predicted:", timeout=WAIT_MS)
        await settle(page)

    async def switch_off():
        await page.locator(".st-key-explore_off input").click()
        await page.keyboard.type(concept)
        await page.get_by_role("option", name=concept, exact=True).click()
        await page.wait_for_selector("text=New prediction:", timeout=WAIT_MS)
        await settle(page)
        await page.keyboard.press("Escape")

    async def preview():
        await page.locator(".st-key-edit_preview button").first.click()
        await page.wait_for_selector("text=Verdict.", timeout=WAIT_MS)
        await settle(page)

    async def apply():
        await page.locator(".st-key-edit_apply button").click()
        await flash(page, "Applied:")

    async def undo():
        await page.locator(".st-key-edit_undo button").click()
        await flash(page, "Undid the last edit.")

    plan = [("open", open_page), ("Explore", lambda: nav(page, "Explore")), ("open a sample", open_sample),
            ("switch a concept off", switch_off), ("Edit", lambda: nav(page, "Edit")),
            ("pick the class", lambda: choose(page, "edit_class", cls)),
            ("pick the concept", lambda: choose(page, "edit_concept", concept)),
            ("Preview", preview), ("Apply", apply), ("Undo", undo), ("Versions", lambda: nav(page, "Versions"))]
    failure, session = None, None
    try:
        for name, action in plan:
            await step(name, action)
            if session is None:
                session = await page.locator("[data-cbm-session]").first.get_attribute("data-cbm-session")
    except Exception as e:  # noqa: BLE001 - recorded, the other sessions go on
        failure = f"{name}: {type(e).__name__}: {str(e).splitlines()[0][:300]}"
    finally:
        await ctx.close()
    return {"concept": concept, "per_step": times, "windows": windows, "session": session, "failure": failure}


def server_side(run: dict, log: list[dict]) -> dict[str, float]:
    """Per step of one journey: seconds from the first script run its action started to the last one
    finishing, over that session's runs that started inside the step's window (none: 0)."""
    mine = [r for r in log if r["session"] == run["session"]]
    out = {}
    for name, (w0, w1) in run["windows"].items():
        runs = [r for r in mine if w0 <= r["start"] <= w1]
        out[name] = round(max(r["start"] + r["seconds"] for r in runs) - min(r["start"] for r in runs), 3) \
            if runs else 0.0
    return out


def p95(values: list[float]) -> float | None:
    """Nearest-rank 95th percentile."""
    if not values:
        return None
    v = sorted(values)
    return v[max(0, math.ceil(0.95 * len(v)) - 1)]


async def measure(url: str, cls: str, concepts: list[str], sessions: int, server_pid: int, server_log: Path,
                  pin: bool) -> dict:
    from playwright.async_api import async_playwright

    exe = shutil.which("chromium")
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        warm = await journey(browser, url, cls, concepts[0])  # warms the server's caches
        alone = await journey(browser, url, cls, concepts[0])
        if pin:
            pin_cores(server_pid)
        with CpuMeter(server_pid) as cpu:
            t0 = time.perf_counter()
            runs = await asyncio.gather(*[journey(browser, url, cls, concepts[i % len(concepts)])
                                          for i in range(sessions)])
            wall = time.perf_counter() - t0
        await browser.close()
    log = [json.loads(line) for line in server_log.read_text().splitlines() if line.strip()]
    for r in (warm, alone, *runs):
        r["server_per_step"] = server_side(r, log)
    server_steps = [t for r in runs for t in r["server_per_step"].values()]
    steps = [t for r in runs for t in r["per_step"].values()]
    per_step_max = {s: max((r["per_step"][s] for r in runs if s in r["per_step"]), default=None) for s in STEPS}
    after_first = {k: v for k, v in alone["per_step"].items() if k != "open"}
    return {
        "alone": {
            "first_page_s": alone["per_step"].get("open"),
            "max_s": max(after_first.values(), default=None),
            "slowest_step": max(after_first, key=after_first.get, default=None),
            "per_step": alone["per_step"],
            "server_per_step": alone["server_per_step"],
            "server_max_s": max((v for k, v in alone["server_per_step"].items() if k != "open"), default=None),
            "warmup_per_step": warm["per_step"],
            "failure": alone["failure"] or warm["failure"],
        },
        "sessions": sessions,
        "concurrent": {
            "p95_s": p95(server_steps),  # on the server's side: what the goal is measured on
            "max_s": max(server_steps, default=None),
            "median_s": sorted(server_steps)[len(server_steps) // 2] if server_steps else None,
            "browser_p95_s": p95(steps),
            "browser_max_s": max(steps, default=None),
            "browser_median_s": sorted(steps)[len(steps) // 2] if steps else None,
            "steps_timed": len(steps),
            "per_step_max_s": per_step_max,
            "wall_s": round(wall, 1),
            "per_session": [r["per_step"] for r in runs],
            "server_per_session": [r["server_per_step"] for r in runs],
            "concepts": [r["concept"] for r in runs],
        },
        "clients_cpu_share": cpu.result["clients_share_of_app_cpu"],  # the clients' share of the app's CPU
        "cpu": cpu.result,
        "failures": [f"alone: {x}" for x in (warm["failure"], alone["failure"]) if x]
                    + [f"session {i}: {r['failure']}" for i, r in enumerate(runs) if r["failure"]],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 sessions at once instead of 8")
    ap.add_argument("--sessions", type=int, default=None, help="sessions at once (default 8; --quick 2)")
    ap.add_argument("--pin", action=argparse.BooleanOptionalAction, default=(os.cpu_count() or 1) >= 2,
                    help="server on core 0, the browsers on the other cores (default with 2+ cores)")
    args = ap.parse_args(argv)
    sessions = args.sessions or (2 if args.quick else 8)
    if shutil.which("chromium") is None:
        print("Chromium is not installed (apt-get install chromium); nothing written", file=sys.stderr)
        return 0
    from cbm.app import streamlit_command

    src, cls, concepts = demo_model()
    model_dir = fresh_copy(src)
    port = free_port()
    cmd = streamlit_command(model_dir, port=port, extra=["--server.address", "127.0.0.1",
                                                         "--server.fileWatcherType", "none"])
    server_log = WORK / "run" / "server_runs.jsonl"
    env = dict(os.environ, CBM_MODEL_DIR=str(model_dir), OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1", CBM_APP_SERVER_TIMINGS=str(server_log))
    load_before = [round(x, 2) for x in os.getloadavg()]
    url = f"http://127.0.0.1:{port}"
    with open(WORK / "run" / "streamlit.log", "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            wait_healthy(url, proc)
            t0 = time.perf_counter()
            res = asyncio.run(measure(url, cls, concepts, sessions, proc.pid, server_log, args.pin))
            total = time.perf_counter() - t0
        finally:
            stop(proc)
    a, c = res["alone"], res["concurrent"]
    payload = {
        "model": "quick demo (Fashion-MNIST 64 px, MobileNetV2; 1,600 images)",
        "journey": list(STEPS),
        "goals_s": GOALS_S,
        **res,
        "meets_goals": {
            "alone_first_page": a["first_page_s"] is not None and a["first_page_s"] <= GOALS_S["alone_first_page"],
            "alone_every_step": a["max_s"] is not None and a["max_s"] <= GOALS_S["alone_step"],
            "concurrent_p95": c["p95_s"] is not None and c["p95_s"] <= GOALS_S["concurrent_p95"],
            "no_failures": not res["failures"],
        },
        "total_s": round(total, 1),
        "pinned_for_concurrent": ({"server_cores": [0], "client_cores": list(range(1, os.cpu_count()))}
                                  if args.pin else None),
        "load_average_before": load_before,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "method": ("Playwright (async) + headless Chromium against `streamlit run` on 127.0.0.1; per step, "
                   "in the browser: action to content visible and the page settled, 0.3 s floor; on the server: "
                   "first script run the action started to the last one finishing (the app's own log); "
                   "concurrent sessions are browser contexts of one Chromium; p95_s/max_s are the server's, "
                   "browser_* the browser's"),
    }
    path = write_result("app_load", payload, quick=args.quick)
    print(f"alone: first page {a['first_page_s']} s, slowest later step {a['max_s']} s ({a['slowest_step']}); "
          f"{sessions} at once: server p95 {c['p95_s']} s, max {c['max_s']} s (browser p95 {c['browser_p95_s']} s); "
          f"failures {len(res['failures'])}; "
          f"clients CPU {res['clients_cpu_share']}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
