"""`cliprt serve` for real: uvicorn on 127.0.0.1 (a free port), concurrent HTTP clients,
the shipped shapes model. Results equal direct calls; bad requests get JSON errors and
the server stays up; overload is a 429; SIGTERM while busy drains and exits 0."""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("starlette", reason="needs the serve extra (starlette)")
pytest.importorskip("uvicorn", reason="needs the serve extra (uvicorn)")
pytest.importorskip("prometheus_client", reason="needs the serve extra (prometheus_client)")
httpx = pytest.importorskip("httpx", reason="needs httpx (the test extra) as the HTTP client")

import uvicorn  # noqa: E402

import cliprt  # noqa: E402
from cliprt.runtime import ClipModel, Index  # noqa: E402
from cliprt.serve import Limits, SearchIndex, create_app  # noqa: E402

PROMPTS = ["a red circle", "a small blue square on the left", "a green triangle", "x"]
LIMITS = Limits(max_body_bytes=200_000, max_items=8, max_text_chars=300, max_image_pixels=400 * 400)


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _images(n: int, seed: int = 0, size: int = 90) -> list[bytes]:
    rng = np.random.default_rng(seed)
    return [
        _png(
            rng.integers(
                0, 256, (int(rng.integers(20, size)), int(rng.integers(20, size)), 3), np.uint8
            )
        )
        for _ in range(n)
    ]


@dataclass
class Running:
    url: str
    model: ClipModel
    server: uvicorn.Server
    paths: list[str]
    images: list[bytes]


def _start(app: Any) -> tuple[uvicorn.Server, threading.Thread, str]:
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="test-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, thread, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def running() -> Iterator[Running]:
    model = cliprt.load("shapes", precision="fp32", device="cpu", threads=2, spinning=False)
    images = _images(6, seed=7)
    paths = [f"photos/{i}.png" for i in range(len(images))]
    index = Index(model.embed_dim)
    index.add(model.encode_images(images))
    app = create_app(
        model,
        limits=LIMITS,
        batching={"max_batch": 8, "max_wait_ms": 2},
        search_index=SearchIndex(index, paths),
    )
    server, thread, url = _start(app)
    yield Running(url, model, server, paths, images)
    server.should_exit = True
    thread.join(30)
    assert not thread.is_alive()
    assert not [t for t in threading.enumerate() if t.name.startswith("cliprt-batch")]
    model.close()


def _embeddings(body: list[dict[str, Any]]) -> np.ndarray:
    return np.array([d["embedding"] for d in sorted(body, key=lambda d: d["index"])], np.float32)


def test_concurrent_clients_get_the_direct_results(running: Running) -> None:
    model, images = running.model, running.images

    def call(i: int) -> tuple[int, np.ndarray]:
        inputs: list[Any] = [PROMPTS[i % 4], {"image": _b64(images[i % 6])}]
        if i % 3 == 0:
            inputs.append({"image": "data:image/png;base64," + _b64(images[(i + 1) % 6])})
        with httpx.Client(timeout=60) as client:
            r = client.post(f"{running.url}/v1/embeddings", json={"input": inputs})
        assert r.status_code == 200, r.text
        assert r.json()["object"] == "list"
        return i, _embeddings(r.json()["data"])

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(call, range(48)))
    for i, got in results:
        want = [model.encode_texts([PROMPTS[i % 4]]), model.encode_images(images[i % 6])]
        if i % 3 == 0:
            want.append(model.encode_images(images[(i + 1) % 6]))
        np.testing.assert_array_equal(got, np.concatenate(want))


def test_base64_encoding_format(running: Running) -> None:
    r = httpx.post(
        f"{running.url}/v1/embeddings",
        json={"input": "a red circle", "encoding_format": "base64"},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    got = np.frombuffer(base64.b64decode(r.json()["data"][0]["embedding"]), "<f4")
    np.testing.assert_array_equal(got, running.model.encode_texts(["a red circle"])[0])


def test_classify_and_search_equal_direct_calls(running: Running) -> None:
    model, images = running.model, running.images
    labels = ["a red circle", "a blue square", "a green triangle"]
    r = httpx.post(
        f"{running.url}/v1/classify",
        json={"images": [_b64(im) for im in images[:3]], "labels": labels},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    probs = np.array([d["probs"] for d in r.json()["data"]], np.float32)
    np.testing.assert_array_equal(probs, model.classify(images[:3], labels))

    r = httpx.post(
        f"{running.url}/v1/search",
        json={"query": ["a red circle", {"image": _b64(images[2])}], "k": 3},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    index = Index(model.embed_dim)
    index.add(model.encode_images(images))
    q = np.concatenate([model.encode_texts(["a red circle"]), model.encode_images(images[2])])
    scores, ids = index.search(q, 3)
    for row, srow, irow in zip(r.json()["data"], scores, ids, strict=True):
        assert [h["id"] for h in row["results"]] == irow.tolist()
        assert [h["score"] for h in row["results"]] == srow.tolist()
        assert [h["path"] for h in row["results"]] == [running.paths[i] for i in irow]
    assert row["results"][0]["id"] == 2  # an image finds itself first


def test_health_ready_and_metrics(running: Running) -> None:
    assert httpx.get(f"{running.url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{running.url}/readyz").status_code == 200
    httpx.post(f"{running.url}/v1/embeddings", content=b"{", timeout=60)
    text = httpx.get(f"{running.url}/metrics").text
    for needle in (
        'cliprt_requests_total{endpoint="embeddings",status="200"}',
        'cliprt_errors_total{endpoint="embeddings",kind="bad_json"}',
        'cliprt_request_seconds_bucket{endpoint="embeddings",le="0.01"}',
        'cliprt_batch_size_bucket{lane="text",le="8.0"}',
        'cliprt_queue_depth{lane="image"} 0.0',
        "cliprt_in_flight_requests",
    ):
        assert needle in text, needle


def _bad_requests(images: list[bytes]) -> list[tuple[str, dict[str, Any], int, str]]:
    big = np.zeros((401, 400, 3), np.uint8)
    return [
        ("/v1/embeddings", {"content": b"{not json"}, 400, "bad_json"),
        ("/v1/embeddings", {"content": b"[1, 2]"}, 400, "bad_json"),
        ("/v1/embeddings", {"content": b"\xff\xfe"}, 400, "bad_json"),
        ("/v1/embeddings", {"json": {}}, 422, "invalid_input"),
        ("/v1/embeddings", {"json": {"input": []}}, 422, "invalid_input"),
        ("/v1/embeddings", {"json": {"input": [""]}}, 422, "invalid_input"),
        ("/v1/embeddings", {"json": {"input": [3]}}, 422, "invalid_input"),
        ("/v1/embeddings", {"json": {"input": ["x" * 301]}}, 422, "invalid_input"),
        ("/v1/embeddings", {"json": {"input": ["a"] * 9}}, 413, "too_many_items"),
        ("/v1/embeddings", {"json": {"input": [{"image": "%%%not base64"}]}}, 422, "invalid_input"),
        ("/v1/embeddings", {"json": {"input": [{"image": "aGVsbG8"}]}}, 422, "invalid_input"),
        (
            "/v1/embeddings",
            {"json": {"input": [{"image": "http://x/cat.jpg"}]}},
            422,
            "invalid_input",
        ),
        ("/v1/embeddings", {"json": {"input": [{"image": _b64(b"hello")}]}}, 422, "invalid_input"),
        (
            "/v1/embeddings",
            {"json": {"input": [{"image": _b64(images[0][:60])}]}},
            422,
            "invalid_input",
        ),
        ("/v1/embeddings", {"json": {"input": [{"image": _b64(_png(big))}]}}, 422, "invalid_input"),
        (
            "/v1/embeddings",
            {"json": {"input": "a", "encoding_format": "int"}},
            422,
            "invalid_input",
        ),
        ("/v1/embeddings", {"content": b" " * 200_001}, 413, "body_too_large"),
        ("/v1/classify", {"json": {"images": [_b64(images[0])]}}, 422, "invalid_input"),
        ("/v1/search", {"json": {"query": "a", "k": 0}}, 422, "invalid_input"),
        ("/v1/search", {"json": {"query": "a", "k": "5"}}, 422, "invalid_input"),
    ]


def test_bad_requests_get_json_errors_and_the_server_stays_up(running: Running) -> None:
    with httpx.Client(base_url=running.url, timeout=60) as client:
        for path, kwargs, status, kind in _bad_requests(running.images):
            r = client.post(path, **kwargs)
            assert r.status_code == status, (path, kwargs, r.text)
            err = r.json()["error"]
            assert err["type"] == kind and err["message"], r.text
        # A streamed (chunked, no Content-Length) body over the limit is cut off too.
        r = client.post("/v1/embeddings", content=iter([b" " * 100_000] * 3))
        assert r.status_code == 413
        assert (
            client.post(
                "/v1/embeddings", json={"input": "a"}, headers={"X-Timeout-Ms": "x"}
            ).status_code
            == 422
        )
        assert client.get("/v1/embeddings").status_code == 405
        assert client.get("/nowhere").status_code == 404
        ok = client.post("/v1/embeddings", json={"input": ["a red circle"]})
        assert ok.status_code == 200


def test_a_truncated_upload_leaves_the_server_up(running: Running) -> None:
    host, port = running.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 5000\r\n\r\n{"input": ["a red'
        )
    r = httpx.post(f"{running.url}/v1/embeddings", json={"input": ["a red circle"]}, timeout=60)
    assert r.status_code == 200


def test_a_request_past_its_deadline_is_a_504(running: Running) -> None:
    r = httpx.post(
        f"{running.url}/v1/embeddings",
        json={"input": [{"image": _b64(running.images[0])}]},
        headers={"X-Timeout-Ms": "0"},
        timeout=60,
    )
    assert r.status_code == 504, r.text
    assert r.json()["error"]["type"] == "deadline_exceeded"


def test_overload_is_a_429_with_retry_after() -> None:
    model = cliprt.load("shapes", precision="fp32", device="cpu", threads=2, spinning=False)
    app = create_app(model, batching={"max_batch": 1, "max_wait_ms": 0, "max_queue": 2})
    server, thread, url = _start(app)
    images = _images(4, seed=9, size=300)
    try:

        def call(i: int) -> httpx.Response:
            with httpx.Client(timeout=60) as client:
                return client.post(
                    f"{url}/v1/embeddings", json={"input": [{"image": _b64(images[i % 4])}]}
                )

        with ThreadPoolExecutor(24) as pool:
            responses = list(pool.map(call, range(96)))
        codes = [r.status_code for r in responses]
        assert set(codes) <= {200, 429}, codes
        assert 429 in codes and 200 in codes, codes
        for i, r in enumerate(responses):
            if r.status_code == 429:
                assert int(r.headers["Retry-After"]) >= 1
                assert r.json()["error"]["type"] == "overloaded"
            else:
                np.testing.assert_array_equal(
                    _embeddings(r.json()["data"]), model.encode_images(images[i % 4])
                )
        assert (
            'cliprt_errors_total{endpoint="embeddings",kind="overloaded"}'
            in httpx.get(f"{url}/metrics").text
        )
    finally:
        server.should_exit = True
        thread.join(30)
        model.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sigterm_while_busy_drains_and_exits_0(tmp_path: Path) -> None:
    port = _free_port()
    images = _images(8, seed=11, size=400)
    model = cliprt.load("shapes", precision="fp32", device="cpu", threads=2, spinning=False)
    index = Index(model.embed_dim)
    index.add(model.encode_images(images))
    index.save(tmp_path / "photos.cix")
    (tmp_path / "photos.cix.paths.json").write_text(json.dumps([f"{i}.png" for i in range(8)]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "cliprt.cli", "serve", "shapes", "--precision", "fp32",
         "--port", str(port), "--threads", "2", "--index", str(tmp_path / "photos.cix")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            try:
                if httpx.get(f"{url}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server never became ready"
            time.sleep(0.1)
        r = httpx.post(f"{url}/v1/search", json={"query": {"image": _b64(images[3])}, "k": 1})
        assert r.json()["data"][0]["results"][0] == {
            "id": 3,
            "score": pytest.approx(1, abs=1e-5),
            "path": "3.png",
        }

        body = {"input": [{"image": _b64(im)} for im in images]}
        started = threading.Barrier(9)

        def call(_: int) -> int | str:
            with httpx.Client(timeout=60) as client:
                started.wait()
                try:
                    r = client.post(f"{url}/v1/embeddings", json=body)
                except httpx.TransportError as exc:  # connected after the listener closed
                    return type(exc).__name__
                if r.status_code == 200:
                    np.testing.assert_array_equal(
                        _embeddings(r.json()["data"]), model.encode_images(images)
                    )
                return r.status_code

        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(call, i) for i in range(8)]
            started.wait()
            time.sleep(0.05)
            proc.send_signal(signal.SIGTERM)
            outcomes = [f.result() for f in futures]
        assert proc.wait(60) == 0
        log = proc.stdout.read().decode() if proc.stdout else ""
        assert "batcher drained and closed" in log, log
        assert "precision=fp32" in log and "max_batch=32" in log, log
        # Requests under way when SIGTERM came were answered in full.
        assert 200 in outcomes, outcomes
        assert all(o == 200 or isinstance(o, str) for o in outcomes), outcomes
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()
        model.close()
