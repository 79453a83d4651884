"""Standard queue "emails": each job is handled by `handler`, retried on failure.

`status_route` lets whoever pushed a job follow it at GET /_jobs/<job id>; `job.progress()`
reports how far it is (see docs on "Following a job").
"""

config = {"timeout": 30, "max_attempts": 3, "status_route": True}


def handler(payload, job):
    job.progress(0.5, "rendering")
    print(f"sending email to {payload['to']} (job {job.job_id})")
    job.progress(1.0, "sent")
    return {"sent": True}
