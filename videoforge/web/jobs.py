"""Job routes (use case 2): create, list, follow (JSON and server-sent events), cancel, outputs,
and the signed HLS playlists and storyboard index players fetch a job's outputs from."""

from __future__ import annotations

import contextlib
import json

from aiohttp import web

from videoforge import keys
from videoforge.auth.tokens import require_user
from videoforge.jobs import Job
from videoforge.jobs.present import asset_json, job_json
from videoforge.jobs.service import AssetNotFound, JobNotFound, Jobs
from videoforge.storage.signed_hls import is_growing
from videoforge.support.paging import MAX_LIMIT, pagination_json
from videoforge.web.bodies import load_body, path_id, validate
from videoforge.web.captions import webvtt_response
from videoforge.web.openapi import documented
from videoforge.web.schemas import CreateJobSchema, ListJobsQuerySchema

routes = web.RouteTableDef()
# Built once: building a schema costs more than using it (it showed in the HTTP benchmark).
CREATE_JOB = CreateJobSchema()
LIST_JOBS_QUERY = ListJobsQuerySchema()


def _jobs(request: web.Request) -> Jobs:
    return request.app[keys.JOBS]


@routes.post("/api/jobs")
@documented(body=CreateJobSchema, statuses=(201,), errors=(403, 404, 429))
async def create_job(request: web.Request) -> web.Response:
    """Queue a transcoding job on a stored upload of the caller's."""
    viewer = await require_user(request)
    body = await load_body(request, CREATE_JOB)
    job = await _jobs(request).create(viewer, body["input_source"], body["output_formats"])
    return web.json_response(
        {"job": job_json(job), "message": "Job created successfully"}, status=201
    )


@routes.get("/api/jobs")
@documented(query=ListJobsQuerySchema)
async def list_jobs(request: web.Request) -> web.Response:
    """The caller's jobs, newest first."""
    viewer = await require_user(request)
    query = validate(LIST_JOBS_QUERY, dict(request.query))
    limit = min(query["limit"], MAX_LIMIT)
    jobs, total = await _jobs(request).list_own(viewer, query["status"], query["page"], limit)
    pagination = pagination_json(total, query["page"], limit)
    return web.json_response({"jobs": [job_json(j) for j in jobs], "pagination": pagination})


@routes.get("/api/jobs/{id}")
@documented(errors=(404,))
async def get_job(request: web.Request) -> web.Response:
    """One of the caller's jobs, with its progress and media metadata."""
    viewer = await require_user(request)
    job = await _jobs(request).get(viewer, path_id(request, "id", JobNotFound))
    return web.json_response({"job": job_json(job)})


@routes.post("/api/jobs/{id}/cancel")
@documented(errors=(404, 409))
async def cancel_job(request: web.Request) -> web.Response:
    """Cancel a job: a pending one ends at once, a running one within a second; 409 for a job
    that has ended (COMPLETED, FAILED or CANCELLED), which is left as it is."""
    viewer = await require_user(request)
    job = await _jobs(request).cancel(viewer, path_id(request, "id", JobNotFound))
    return web.json_response({"job": job_json(job), "message": "Job cancellation requested"})


@routes.get("/api/jobs/{id}/assets")
@documented(errors=(404,))
async def list_assets(request: web.Request) -> web.Response:
    """A job's outputs: thumbnail, GIF preview, renditions, HLS master playlist."""
    viewer = await require_user(request)
    assets = await _jobs(request).assets(viewer, path_id(request, "id", JobNotFound))
    return web.json_response({"assets": [asset_json(a) for a in assets]})


@routes.get("/api/jobs/{id}/assets/{asset_id}/download")
@documented(statuses=(302,), errors=(404,))
async def download_asset(request: web.Request) -> web.Response:
    """Redirect to a signed URL of one output."""
    viewer = await require_user(request)
    url = await _jobs(request).download_url(
        viewer, path_id(request, "id", JobNotFound), path_id(request, "asset_id", AssetNotFound)
    )
    raise web.HTTPFound(url)


@routes.get("/api/jobs/{id}/events")
@documented(content_type="text/event-stream", errors=(404,))
async def job_events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: one per status or progress change, closed after a final status."""
    viewer = await require_user(request)
    jobs = _jobs(request)
    job = await jobs.get(viewer, path_id(request, "id", JobNotFound))
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    with contextlib.suppress(ConnectionResetError):  # the client went away
        await _stream_job(response, jobs, job)
    return response


async def _stream_job(response: web.StreamResponse, jobs: Jobs, job: Job) -> None:
    """Write each change of the job as an event until a final status; a comment when quiet."""
    async with contextlib.aclosing(jobs.follow(job)) as changes:
        async for change in changes:
            if change is None:
                await response.write(b": keep-alive\n\n")  # proxies close silent connections
            else:
                await _send(response, change.kind, change.job)
    await response.write_eof()


async def _send(response: web.StreamResponse, kind: str, job: Job) -> None:
    await response.write(f"event: {kind}\ndata: {json.dumps(job_json(job))}\n\n".encode())


@routes.get("/api/hls/{token}/{path:.+}")
@documented(auth="none", content_type="application/vnd.apple.mpegurl", errors=(403, 404))
async def hls_playlist(request: web.Request) -> web.Response:
    """A job's HLS playlist, its media URIs signed; the token in the path grants the job."""
    body = await request.app[keys.GALLERY].hls_playlist(
        request.match_info["token"], request.match_info["path"]
    )
    # A playlist that grows while its job runs must be fetched afresh at every reload.
    growing = is_growing(body.decode("utf-8", "replace"))
    return web.Response(
        body=body,
        content_type="application/vnd.apple.mpegurl",
        headers={"Cache-Control": "no-cache" if growing else "private, max-age=10"},
    )


@routes.get("/api/storyboards/{token}/storyboard.vtt")
@documented(auth="none", content_type="text/vtt", errors=(403, 404))
async def storyboard_index(request: web.Request) -> web.Response:
    """A job's storyboard index, each sprite a signed URL; the token in the path grants it."""
    return webvtt_response(await request.app[keys.GALLERY].storyboard(request.match_info["token"]))
