"""Standard queue "emails": each job is handled by `handler`, retried on failure."""

config = {"timeout": 30, "max_attempts": 3}


def handler(payload, job):
    print(f"sending email to {payload['to']} (job {job.job_id})")
    return {"sent": True}
