"""POST /emails - queue an email; queues/emails.py sends it in the background."""

from qr.runtime import HTTPError, Response, queues


def post(body):
    if not isinstance(body, dict) or "to" not in body:
        raise HTTPError(400, 'send JSON like {"to": "someone@example.com"}')
    job_id = queues["emails"].push({"to": body["to"]})
    # GET /_jobs/<id> shows the job's state (queues/emails.py has config["status_route"]).
    headers = {"X-Job-Id": job_id, "Location": f"/_jobs/{job_id}"}
    return Response.json({"job_id": job_id}, status=202, headers=headers)
