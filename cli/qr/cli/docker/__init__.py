"""``qr dev --docker``: run handlers in warm Lambda-like containers.

Pipeline: ``engine`` connects to Docker (clear errors when it is missing or stopped) →
``image`` builds the function image from a base image plus the runtime interface client
(``awslambdaric``) installed from wheels downloaded on the host, tagged by a hash of its inputs
so it is rebuilt only when they change → ``pool`` keeps warm containers that run the Lambda entry
point, each polling its own ``runtime_api`` server (the Lambda Runtime API served by qr), with the
code bind-mounted at ``/var/task`` so a code change only restarts the containers.
"""
