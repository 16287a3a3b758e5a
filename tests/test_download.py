"""helpers.data.download against a local HTTP server that serves generated QuickDraw-format class files.

The server (fixture ``server``) can honour Range requests, ignore them, cut a connection midway, or send
more than was asked for, so every path of the downloader runs without the internet.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
from conftest import ROOT

import helpers.data.download as dl
from helpers.data.download import QUICKDRAW_BASE_URL, DownloadError, check_url, download_quickdraw, main
from helpers.data.quickdraw import CLASS_NAMES, FILES, DataError, load_quickdraw, write_synthetic_quickdraw

N_ROWS = 60  # rows per served class file
SEND_CHUNK = 16 * 1024


def class_rows(label: int, n: int = N_ROWS) -> np.ndarray:
    """Deterministic (n, 784) uint8 rows for class ``label``; distinct rows, distinct classes."""
    return np.random.default_rng(1000 + label).integers(0, 256, (n, 784), dtype=np.uint8)


def row_set(images: np.ndarray) -> set[bytes]:
    return {row.tobytes() for row in images.reshape(len(images), -1)}


def data_offset(path: Path) -> int:
    """Where row 0 starts in a served (n, 784) uint8 .npy file."""
    n = np.load(path, mmap_mode="r").shape[0]
    return path.stat().st_size - n * 784


class FakeQuickDraw:
    """State of the local server: the files it serves, how it misbehaves, what it saw and sent."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.mode = "range"  # "range" | "ignore-range" | "oversize-range" | "overlong-body"
        self.cut_after: dict[str, int] = {}  # class -> body bytes its next rows request gets before a hang-up
        self.log: list[tuple[str, str | None, int]] = []  # (class, Range header, body bytes sent)
        self.url = ""

    def put(self, name: str, array: np.ndarray) -> None:
        np.save(self.folder / f"{name}.npy", array, allow_pickle=array.dtype.hasobject)

    def requests_for(self, name: str) -> list[str | None]:
        return [rng for cls, rng, _ in self.log if cls == name]


class Handler(BaseHTTPRequestHandler):
    def setup(self):
        # A small send buffer makes "bytes sent" mean "bytes the client accepted (plus a little)": with
        # loopback's default megabytes of buffering the whole file would leave before the client hangs up.
        self.request.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
        super().setup()

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):
        state: FakeQuickDraw = self.server.state
        name = unquote(self.path.lstrip("/")).removesuffix(".npy")
        path = state.folder / f"{name}.npy"
        if "/" in name or not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        asked = re.fullmatch(r"bytes=(\d+)-(\d+)", self.headers.get("Range") or "")
        start, end, status = 0, len(data), 200  # end exclusive
        if asked and state.mode != "ignore-range":
            start, end, status = int(asked[1]), min(int(asked[2]) + 1, len(data)), 206
            if state.mode == "oversize-range":
                end = len(data)  # claims, and sends, the whole rest of the file
        self.send_response(status)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(data)}")
        body = data[start:end]
        if state.mode == "overlong-body":  # honest headers but no Content-Length, then extra bytes
            body = data[start:end + 500]
        else:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if asked and int(asked[1]) > 0:  # a rows request (past the header): the one a cut applies to
            body = body[:state.cut_after.pop(name, None)]  # Content-Length promised more; then we hang up
        sent = 0
        try:
            for i in range(0, len(body), SEND_CHUNK):
                self.wfile.write(body[i:i + SEND_CHUNK])
                sent += len(body[i:i + SEND_CHUNK])
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client hung up once it had what it needed
        state.log.append((name, self.headers.get("Range"), sent))


@pytest.fixture
def server(tmp_path):
    folder = tmp_path / "served"
    folder.mkdir()
    state = FakeQuickDraw(folder)
    for label, name in enumerate(CLASS_NAMES):
        state.put(name, class_rows(label))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.state = state
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()


def fetch(out_dir: Path, server: FakeQuickDraw, n_train: int = 20, n_test: int = 5, **kw) -> Path:
    return download_quickdraw(out_dir, n_train, n_test, base_url=server.url, progress=False, timeout=5, **kw)


def read_folder(path: Path) -> dict[str, np.ndarray]:
    return {name: np.load(path / name) for name in FILES}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_download_with_range_requests_builds_valid_folder(server, tmp_path):
    out = fetch(tmp_path / "qd", server)

    assert out == (tmp_path / "qd").resolve()
    qd = load_quickdraw(out)
    files = read_folder(out)
    assert files["train_images.npy"].shape == (100, 28, 28) and files["train_images.npy"].dtype == np.uint8
    assert files["test_images.npy"].shape == (25, 28, 28)
    assert files["train_labels.npy"].dtype == np.int64 and files["test_labels.npy"].dtype == np.int64
    assert np.bincount(qd.y_train).tolist() == [20] * 5
    assert np.bincount(qd.y_test).tolist() == [5] * 5
    for label in range(5):  # each class holds exactly the first 25 rows of its own file, split 20/5
        train, test = qd.x_train[qd.y_train == label], qd.x_test[qd.y_test == label]
        assert row_set(train) | row_set(test) == row_set(class_rows(label)[:25])
        assert not row_set(train) & row_set(test)
    assert server.log and all(rng and rng.startswith("bytes=") for _, rng, _ in server.log)
    served_total = sum(p.stat().st_size for p in server.folder.iterdir())
    assert sum(sent for *_, sent in server.log) < served_total / 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["qd", "served"]  # no .partial or .tmp left


def test_download_without_range_support_reads_only_what_it_needs(server, tmp_path):
    for label, name in enumerate(CLASS_NAMES):  # big files, so that reading all of one would show
        server.put(name, class_rows(label, 4000))
    file_size = (server.folder / "rabbit.npy").stat().st_size
    reference = read_folder(fetch(tmp_path / "with_ranges", server))

    server.mode, server.log = "ignore-range", []
    out = fetch(tmp_path / "qd", server)

    assert all(sent < file_size / 4 for *_, sent in server.log)  # the client hung up early
    qd = load_quickdraw(out)
    for label in range(5):
        got = row_set(qd.x_train[qd.y_train == label]) | row_set(qd.x_test[qd.y_test == label])
        assert got == row_set(class_rows(label)[:25])
    files = read_folder(out)  # the server's Range support changes nothing in the result
    assert all(np.array_equal(files[name], reference[name]) for name in FILES)


@pytest.mark.parametrize("mode", ["range", "ignore-range"])
def test_connection_cut_midway_then_rerun_completes(mode, server, tmp_path):
    out = tmp_path / "qd"
    server.mode = mode
    server.cut_after["hand"] = 3000  # the hand rows request dies after 3000 body bytes
    offset = data_offset(server.folder / "hand.npy")
    have = 3000 if mode == "range" else 3000 - offset  # a 200 body starts with the .npy header

    with pytest.raises(DownloadError, match=rf"hand\.npy.*connection ended after {have} of 19600 bytes"):
        fetch(out, server)

    assert not out.exists()
    with pytest.raises(DataError):
        load_quickdraw(out)
    partial = tmp_path / "qd.partial"
    assert (partial / "rabbit.rows.npy").is_file() and (partial / "yoga.rows.npy").is_file()
    assert (partial / "hand.part").stat().st_size == have

    server.log = []
    fetch(out, server)

    assert server.requests_for("rabbit") == [] and server.requests_for("yoga") == []  # cached
    start = offset + have  # asks only for the rest (a server ignoring Range sends all; the client skips)
    assert f"bytes={start}-{offset + 19600 - 1}" in server.requests_for("hand")
    assert not partial.exists()
    resumed, uninterrupted = read_folder(out), read_folder(fetch(tmp_path / "reference", server))
    assert all(np.array_equal(resumed[name], uninterrupted[name]) for name in FILES)


def test_interrupt_while_assembling_leaves_no_output_folder(server, tmp_path, monkeypatch):
    out = tmp_path / "qd"
    real_save = dl.atomic_save_npy

    def ctrl_c_on_test_images(path, array):
        if Path(path).name == "test_images.npy":
            raise KeyboardInterrupt
        real_save(path, array)

    monkeypatch.setattr(dl, "atomic_save_npy", ctrl_c_on_test_images)
    with pytest.raises(KeyboardInterrupt):
        fetch(out, server)

    assert sorted(p.name for p in tmp_path.iterdir()) == ["qd.partial", "served"]  # no qd, no qd.tmp-<pid>
    monkeypatch.setattr(dl, "atomic_save_npy", real_save)
    server.log = []
    load_quickdraw(fetch(out, server))
    assert all(rng == "bytes=0-1023" for _, rng, _ in server.log)  # rows came from the cache: headers only


def test_split_is_deterministic_for_a_seed(server, tmp_path):
    a = read_folder(fetch(tmp_path / "a", server, seed=1))
    b = read_folder(fetch(tmp_path / "b", server, seed=1))
    c = read_folder(fetch(tmp_path / "c", server, seed=2))

    assert all(np.array_equal(a[name], b[name]) for name in FILES)
    assert not np.array_equal(a["test_images.npy"], c["test_images.npy"])
    union = lambda f: row_set(f["train_images.npy"]) | row_set(f["test_images.npy"])  # noqa: E731
    assert union(a) == union(c)  # another seed splits the same drawings differently


@pytest.mark.parametrize("url", [
    "http://example.com/",
    "https://evil.example/quickdraw_dataset/",
    "http://storage.googleapis.com/quickdraw_dataset/full/numpy_bitmap/",  # not https
    "https://storage.googleapis.com/another_bucket/",
    "https://storage.googleapis.com@evil.example/quickdraw_dataset/",
    "https://storage.googleapis.com/quickdraw_dataset/../another_bucket/",
    "http://127.0.0.2:8000/",
    "http://localhost/",  # loopback needs an explicit port
    "file:///etc/",
])
def test_rejects_non_quickdraw_url(url, tmp_path):
    with pytest.raises(ValueError, match="only https://storage.googleapis.com/quickdraw_dataset/"):
        download_quickdraw(tmp_path / "qd", 2, 1, base_url=url, progress=False)
    assert list(tmp_path.iterdir()) == []  # refused before touching the disk


def test_accepts_quickdraw_and_loopback_urls():
    assert check_url(QUICKDRAW_BASE_URL + "rabbit.npy").endswith("rabbit.npy")
    assert check_url("http://127.0.0.1:8000/x/rabbit.npy") and check_url("http://localhost:8000/rabbit.npy")


@pytest.mark.parametrize("mode", ["oversize-range", "overlong-body"])
def test_refuses_response_larger_than_expected(mode, server, tmp_path):
    server.mode = mode
    with pytest.raises(DownloadError, match=r"rabbit\.npy.*refused"):
        fetch(tmp_path / "qd", server)
    assert not (tmp_path / "qd").exists()


@pytest.mark.parametrize("array, problem", [
    (class_rows(1).astype(np.float32), "dtype float32"),
    (class_rows(1)[:, :783], r"shape \(60, 783\)"),
    (class_rows(1)[:10], r"shape \(10, 784\)"),  # fewer rows than the 25 asked for
    (np.asfortranarray(class_rows(1)), "fortran_order=True"),
    (np.zeros((60, 784), dtype=object), "dtype object"),  # a pickled array: refused by its header
])
def test_rejects_bad_header(array, problem, server, tmp_path):
    server.put("yoga", array)
    expected = r"expected shape \(n >= 25, 784\) dtype uint8"
    with pytest.raises(DownloadError, match=rf"/yoga\.npy: holds .*{problem}.*{expected}"):
        fetch(tmp_path / "qd", server)
    assert not (tmp_path / "qd").exists()


def test_rejects_file_that_is_not_npy(server, tmp_path):
    (server.folder / "yoga.npy").write_bytes(b"<html>Not found</html>")
    with pytest.raises(DownloadError, match=r"yoga\.npy: not a \.npy file"):
        fetch(tmp_path / "qd", server)


def test_offline_fails_fast_with_course_folder_hint(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/"  # nothing listens there
    t0 = time.monotonic()
    with pytest.raises(DownloadError) as err:
        download_quickdraw(tmp_path / "qd", 2, 1, base_url=url, progress=False)
    assert time.monotonic() - t0 < 5
    message = str(err.value)
    assert "download failed" in message and f"{url}rabbit.npy" in message
    assert "data/quickdraw_subset_np" in message and "QUICKDRAW_DIR" in message
    assert not (tmp_path / "qd").exists()


def test_silent_server_times_out(tmp_path):
    with socket.socket() as silent:  # accepts connections (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        t0 = time.monotonic()
        with pytest.raises(DownloadError, match="download failed.*timed out"):
            download_quickdraw(tmp_path / "qd", 2, 1, base_url=f"http://127.0.0.1:{silent.getsockname()[1]}/",
                               progress=False, timeout=0.5)
        assert time.monotonic() - t0 < 3


def test_existing_complete_folder_is_not_downloaded_again(server, tmp_path):
    out = write_synthetic_quickdraw(tmp_path / "qd", 4, 2)
    before = load_quickdraw(out).md5

    assert fetch(out, server) == out.resolve()
    assert server.log == []
    assert load_quickdraw(out).md5 == before


def test_existing_incomplete_folder_is_left_untouched(server, tmp_path):
    out = tmp_path / "qd"
    out.mkdir()
    (out / "notes.txt").write_text("mine", encoding="utf-8")

    with pytest.raises(DownloadError, match="exists but is not a complete course-format folder"):
        fetch(out, server)
    assert server.log == [] and (out / "notes.txt").read_text(encoding="utf-8") == "mine"


def test_progress_bar_counts_bytes(server, tmp_path, capsys):
    download_quickdraw(tmp_path / "qd", 20, 5, base_url=server.url, progress=True)
    bar = capsys.readouterr().err
    assert "QuickDraw" in bar and "100%" in bar and "95.7k" in bar  # 5 classes x 25 rows x 784 bytes


def test_cli_downloads_into_out_folder(server, tmp_path, capsys):
    out = tmp_path / "qd"
    code = main(["--out", str(out), "--train-per-class", "3", "--test-per-class", "2",
                 "--base-url", server.url, "--no-progress"])
    assert code == 0 and capsys.readouterr().out.strip() == str(out.resolve())
    assert np.bincount(load_quickdraw(out).y_test).tolist() == [2] * 5


def test_cli_reports_error_without_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "helpers.data.download", "--out", str(tmp_path / "qd"),
         "--base-url", "http://example.com/", "--no-progress"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert "http://example.com/" in result.stderr and "only https://storage.googleapis.com" in result.stderr
    assert "Traceback" not in result.stderr
