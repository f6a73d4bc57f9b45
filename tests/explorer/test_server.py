"""The explorer's HTTP server and `vaelab explore`, as a browser and a user meet them."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import run_cli


def call(server, path: str, payload=None, raw: bytes | None = None, method: str | None = None):
    """(status, JSON answer) of one request."""
    data = raw if raw is not None else (json.dumps(payload).encode() if payload is not None else None)
    request = urllib.request.Request(server.url + path.lstrip("/"), data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_the_server_listens_on_loopback_only(server):
    assert server.url.startswith("http://127.0.0.1:") and server.port > 0


def test_the_page_and_plotly_are_served_from_the_installed_packages(server):
    with urllib.request.urlopen(server.url, timeout=30) as response:
        page = response.read().decode()
    assert "<title>vaelab explorer</title>" in page and 'src="/plotly.min.js"' in page
    assert "https://" not in page  # nothing from a CDN: the page works offline
    with urllib.request.urlopen(server.url + "plotly.min.js", timeout=30) as response:
        script = response.read()
    assert len(script) > 1_000_000 and b"plotly.js" in script[:200]


def test_every_endpoint_answers_good_requests(server):
    assert call(server, "/api/summary")[0] == 200
    assert call(server, "/api/map?projection=tsne")[0] == 200
    assert call(server, "/api/point?i=4")[0] == 200
    for path, payload in [("/api/decode", {"key": "vae", "z": [0, 0, 0, 0]}),
                          ("/api/plane", {"keys": ["vae", "ae"], "source": "vae", "x": 0.5, "y": 0.1}),
                          ("/api/interpolate", {"keys": ["vae"], "a": 0, "b": 1, "steps": 4, "path": "linear"}),
                          ("/api/centroids", {"keys": ["vae"], "sigma": 0.5, "seed": 1}),
                          ("/api/prior", {"keys": ["vae"], "seed": 1, "n": 3})]:
        status, answer = call(server, path, payload)
        assert status == 200, answer


@pytest.mark.parametrize("path,payload,message", [
    ("/api/map?projection=nope", None, "unknown projection 'nope'"),
    ("/api/point?i=abc", None, "point must be an integer"),
    ("/api/point", None, "point must be an integer"),
    ("/api/point?i=1000", None, "point must be an integer from 0 to 24"),
    ("/api/decode", {"key": "nope", "z": [0, 0, 0, 0]}, "unknown model 'nope'"),
    ("/api/decode", {"key": "vae", "z": [0, 0]}, "z must be a list of 4 numbers, not 2"),
    ("/api/decode", {"key": "vae", "z": [0, None, 0, 0]}, "finite numbers only"),
    ("/api/decode", {"key": "vae"}, "missing field(s) z"),
    ("/api/decode", {"key": "vae", "z": [0, 0, 0, 0], "extra": 1}, "unknown field(s) extra"),
    ("/api/plane", {"keys": ["vae"], "source": "vae", "x": "1", "y": 0}, "finite numbers only"),
    ("/api/interpolate", {"keys": ["vae"], "a": 0, "b": 1, "steps": 0, "path": "linear"}, "steps must be"),
    ("/api/centroids", {"keys": ["ghost"], "sigma": 0, "seed": 0}, "unknown model 'ghost'"),
    ("/api/prior", {"keys": ["vae"], "seed": 0, "n": 10_000}, "n must be an integer from 1 to 64"),
    ("/api/prior", {"keys": ["vae"], "seed": 0, "n": 4, "source": {"a": 1}}, "source must be 'prior' or 'expost'"),
    ("/api/point?i=%C2%B2", None, "point must be an integer"),  # '²': a digit to str.isdigit(), not to int()
    ("/api/point?i=" + "1" * 5000, None, "point must be an integer"),  # beyond int()'s 4,300 digits
    ("/api/decode", {"key": "vae", "z": [10 ** 400, 0, 0, 0]}, "finite numbers only"),  # no float holds it
    ("/api/plane", {"keys": ["vae"], "source": "vae", "x": 10 ** 400, "y": 0}, "finite numbers only"),
    ("/api/centroids", {"keys": ["vae"], "sigma": -(10 ** 400), "seed": 0}, "sigma must be a number"),
    ("/api/attribute", {"keys": ["vae"], "name": "Smiling", "point": 0}, "has no binary attributes to follow"),
    ("/api/attribute", {"keys": ["vae"], "name": "Smiling"}, "missing field(s) point"),
])
def test_bad_requests_get_a_400_with_a_message(server, path, payload, message):
    status, answer = call(server, path, payload)
    assert status == 400 and message in answer["error"], answer


def test_nan_and_junk_bodies_get_a_400(server):
    status, answer = call(server, "/api/decode", raw=b'{"key": "vae", "z": [NaN, 0, 0, 0]}')
    assert status == 400 and "finite numbers only" in answer["error"]
    assert call(server, "/api/decode", raw=b"{not json")[1] == {"error": "the request body is not JSON: send a "
                                                                         "JSON object"}
    assert call(server, "/api/decode", raw=b"[1, 2]")[1]["error"] == "the request body must be a JSON object"
    assert call(server, "/api/decode", raw=b"\xff\xfe")[0] == 400
    status, answer = call(server, "/api/decode", raw=b"{" + b" " * (2 << 20) + b"}")
    assert status == 400 and "send at most" in answer["error"]
    status, answer = call(server, "/api/decode", raw=b"[" * 100_000)  # deeper than Python's parser recurses
    assert status == 400 and answer["error"] == "the request body is not JSON: send a JSON object"


def test_unknown_pages_and_methods_answer_in_json(server):
    assert call(server, "/api/nothing") == (404, {"error": "GET /api/nothing: no such page"})
    status, answer = call(server, "/api/decode", method="GET")
    assert status == 405 and "not allowed" in answer["error"]
    assert call(server, "/api/summary")[0] == 200  # the server is still up


def test_200_decodes_from_20_concurrent_clients_are_all_answered(server, explorer):
    models = ["vae", "conv-vae", "cvae", "ae"]

    def client(k: int) -> list[int]:
        statuses = []
        for j in range(10):
            z = [0.1 * k, -0.1 * j, 0.0, 0.5]
            statuses.append(call(server, "/api/decode", {"key": models[(k + j) % 4], "z": z})[0])
        return statuses

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = [status for statuses in pool.map(client, range(20)) for status in statuses]
    assert answers == [200] * 200
    # the same code decodes to the same image, however busy the server was
    one = call(server, "/api/decode", {"key": "vae", "z": [0.1, 0.0, 0.0, 0.5]})[1]["image"]
    assert one == explorer.decode("vae", [0.1, 0.0, 0.0, 0.5])["image"]


def test_the_cli_serves_until_interrupted(tiny_study):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "-m", "vaelab", "explore", str(tiny_study), "--no-browser"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = process.stdout.readline()
        assert line.startswith("explorer: http://127.0.0.1:"), (line, process.stderr.read() if process.poll() else "")
        url = line.split()[1]
        with urllib.request.urlopen(url + "api/summary", timeout=30) as response:
            assert [m["key"] for m in json.loads(response.read())["models"]][0] == "vae"
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert "explorer stopped" in out and "Traceback" not in err


def test_the_cli_refuses_bad_input_in_one_line(tmp_path, tiny_study):
    result = run_cli("explore", str(tmp_path / "missing"), "--no-browser")
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "no such folder" in result.stderr
    result = run_cli("explore", str(tiny_study), "--dataset", "mnist", "--no-browser")
    assert result.returncode == 2 and "has no data set 'mnist'" in result.stderr
    result = run_cli("explore", str(tiny_study), "--points", "3", "--no-browser")
    assert result.returncode == 2 and "--points must be a whole number between 10 and 20000" in result.stderr


def test_a_port_in_use_is_a_one_line_error(server, tiny_study):
    result = run_cli("explore", str(tiny_study), "--port", str(server.port), "--no-browser")
    assert result.returncode == 2 and "cannot listen on 127.0.0.1" in result.stderr and "--port" in result.stderr
    assert "Traceback" not in result.stderr


def test_without_the_extra_the_cli_says_how_to_install_it(tiny_study):
    # Hide starlette as if the extra were not installed.
    code = ("import sys; sys.modules['starlette'] = None; from vaelab.cli import main; "
            f"sys.argv = ['vaelab', 'explore', {str(tiny_study)!r}, '--no-browser']; main()")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: the explorer needs its server stack: pip install 'vaelab[explore]' "
                                     "(starlette and uvicorn)")


def test_loopback_is_recognised():
    from vaelab.explorer.server import is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4") and not is_loopback("example.org")


def test_the_server_stops_when_asked(explorer):
    from vaelab.explorer.server import Server

    running = Server(explorer).start()
    assert call(running, "/api/summary")[0] == 200
    started = time.perf_counter()
    running.stop()
    assert not running.thread.is_alive() and time.perf_counter() - started < 10
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(running.url + "api/summary", timeout=5)


def test_a_run_whose_measures_json_holds_nan_opens_with_the_value_missing(bare_run, tmp_path):
    from vaelab.explorer.server import Server
    from vaelab.explorer.session import Explorer, find_runs

    run = tmp_path / "vae-nan"
    shutil.copytree(bare_run, run)
    (run / "measures.json").write_text('{"measures": {"silhouette": NaN, "knn5_accuracy": 0.5, "recon_bce": '
                                       'Infinity, "prior_fd": "three", "sap": 1' + "0" * 400 + '}}')
    running = Server(Explorer(find_runs([run]))).start()
    try:
        status, answer = call(running, "/api/summary")
    finally:
        running.stop()
    assert status == 200, answer
    assert answer["models"][0]["measures"] == {"knn5_accuracy": 0.5}


GET_PATHS = ["/api/summary", "/api/map", "/api/point"]
POST_FIELDS = {"/api/decode": ("key", "z", "label"), "/api/plane": ("keys", "source", "x", "y"),
               "/api/interpolate": ("keys", "a", "b", "steps", "path"), "/api/centroids": ("keys", "sigma", "seed"),
               "/api/prior": ("keys", "seed", "n", "source")}
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(min_value=10 ** 300, max_value=10 ** 400)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8)
    | st.sampled_from(["vae", "ae", "cvae", "conv-vae", "linear", "slerp", "pca", "tsne", "prior", "expost"]),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=12)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(GET_PATHS), value=st.text(max_size=30))
def test_no_query_gets_a_5xx(server, path, value):
    status, answer = call(server, f"{path}?i={urllib.parse.quote(value)}&projection={urllib.parse.quote(value)}")
    assert status < 500 and isinstance(answer, dict), answer


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(sorted(POST_FIELDS)), data=st.data())
def test_no_body_gets_a_5xx(server, path, data):
    fields = POST_FIELDS[path]
    chosen = data.draw(st.lists(st.sampled_from(fields), unique=True))
    payload = {name: data.draw(json_values) for name in chosen}
    status, answer = call(server, path, raw=json.dumps(payload).encode())  # NaN and Infinity as Python writes them
    assert status < 500 and isinstance(answer, dict), (payload, answer)


@pytest.mark.parametrize("host, words", [
    ("no-such-host.invalid", "cannot listen on no-such-host.invalid ("),
    ("203.0.113.7", "cannot listen on 203.0.113.7 (Cannot assign requested address)"),  # TEST-NET: not this machine
])
def test_a_host_it_cannot_listen_on_is_the_one_line_said(tiny_study, host, words):
    result = run_cli("explore", str(tiny_study), "--host", host, "--no-browser")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [lines[0]] and lines[0].startswith(f"error: {words}"), result.stderr
    assert "give --host a name or address of this machine" in lines[0]
    assert "listens on" not in result.stdout + result.stderr
