"""A local HTTP stand-in of the Climate Data Store retrieve API (the one `cdsapi` >= 0.7 speaks
through `ecmwf-datastores-client` with a personal access token), for tests that run the real
`cdsapi` client: point `CDSAPI_URL` at `server.url` and set `CDSAPI_KEY` to `server.key`.

Every job succeeds at once; its result is the CDS-shaped netCDF file `cds_standin.write_answer`
makes for the request (the synthetic ERA5 generator, no network). The server records every
request it was sent, and answers 401 to a wrong key. Endpoints, under `<url>`:

    GET  /catalogue/v1/messages                      -> no messages
    GET  /retrieve/v1/processes/<dataset>            -> the process
    POST /retrieve/v1/processes/<dataset>/execution  -> a job (its file is made here)
    GET  /retrieve/v1/jobs/<id>[/results]            -> status "successful" / the result asset
    GET  /files/<id>.nc                              -> the file (HEAD too)
"""

from __future__ import annotations

import json
import tempfile
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from syncvp.io.netcdf import NETCDF_LOCK
from tests.data.cds_standin import write_answer


class CDSHTTPStandIn:
    """Start with `with CDSHTTPStandIn() as server:`; `server.requests` lists (dataset, request)."""

    def __init__(self, key: str = "standin-token-0123", seed: int = 0, layout: str = "new"):
        self.key, self.seed, self.layout = key, seed, layout
        self.requests: list[tuple[str, dict]] = []
        self._files = Path(tempfile.mkdtemp(prefix="cds-standin-"))
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/api"

    def env(self) -> dict[str, str]:
        """What a process needs to reach this server through cdsapi (no ~/.cdsapirc)."""
        return {"CDSAPI_URL": self.url, "CDSAPI_KEY": self.key}

    def months(self) -> list[str]:
        return [f"{r['year']}-{r['month']}" for _, r in self.requests]

    def __enter__(self) -> CDSHTTPStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        for path in self._files.iterdir():
            path.unlink()
        self._files.rmdir()

    def submit(self, dataset: str, request: dict) -> str:
        job = uuid.uuid4().hex
        with self._lock:
            self.requests.append((dataset, request))
        with NETCDF_LOCK:  # requests arrive on several threads; HDF5 writes must not overlap
            write_answer(self._files / f"{job}.nc", request, seed=self.seed, layout=self.layout, wrap=None)
        return job

    def file(self, job: str) -> Path | None:
        path = self._files / f"{job}.nc"
        return path if job.isalnum() and path.is_file() else None


def _handler(cds: CDSHTTPStandIn):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # quiet
            pass

        def _json(self, body: dict, status: int = 200) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _route(self) -> tuple[str, ...] | None:
            path = self.path.split("?", 1)[0]
            if path.startswith("/files/"):
                return ("files", path.removeprefix("/files/").removesuffix(".nc"))
            route = tuple(path.removeprefix("/api/").split("/"))
            if route[0] != "catalogue" and self.headers.get("PRIVATE-TOKEN") != cds.key:  # the catalogue is public
                self._json({"title": "Authentication failed", "detail": "wrong or missing token"}, 401)
                return None
            return route

        def _job(self, job: str) -> dict:
            base = f"{cds.url}/retrieve/v1/jobs/{job}"
            return {"jobID": job, "status": "successful", "type": "process",
                    "links": [{"rel": "self", "href": base}, {"rel": "monitor", "href": base},
                              {"rel": "results", "href": f"{base}/results"}]}

        def _send_file(self, job: str, body: bool) -> None:
            path = cds.file(job)
            if path is None:
                self._json({"title": "not found"}, 404)
                return
            data = path.read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "application/netcdf")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if body:
                self.wfile.write(data)

        def do_HEAD(self) -> None:
            route = self._route()
            if route and route[0] == "files":
                self._send_file(route[1], body=False)
            elif route:
                self._json({}, 200)

        def do_GET(self) -> None:
            route = self._route()
            if route is None:
                return
            if route[0] == "files":
                self._send_file(route[1], body=True)
            elif route == ("catalogue", "v1", "messages"):
                self._json({"messages": []})
            elif route[:3] == ("retrieve", "v1", "processes") and len(route) == 4:
                self._json({"id": route[3], "links": []})
            elif route[:3] == ("retrieve", "v1", "jobs") and len(route) == 4 and cds.file(route[3]):
                self._json(self._job(route[3]))
            elif route[:3] == ("retrieve", "v1", "jobs") and route[4:] == ("results",) and cds.file(route[3]):
                path = cds.file(route[3])
                self._json({"asset": {"value": {"href": f"{cds.url.removesuffix('/api')}/files/{path.name}",
                                                "file:size": path.stat().st_size, "type": "application/netcdf"}}})
            else:
                self._json({"title": f"stand-in CDS: no route GET {self.path}"}, 404)

        def do_POST(self) -> None:
            route = self._route()
            if route is None:
                return
            if route[:3] != ("retrieve", "v1", "processes") or route[4:] != ("execution",):
                self._json({"title": f"stand-in CDS: no route POST {self.path}"}, 404)
                return
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            self._json(self._job(cds.submit(route[3], body["inputs"])), 201)

    return Handler
