"""Deploying and operating a stage on AWS.

One module per concern, each usable on its own and wired together by the thin commands in
``qr.cli.commands``:

* ``terraform`` - finding the binary, ``init`` / ``plan`` / ``apply`` / ``output`` / ``destroy``
  with the ``-json`` event stream shown as progress, Ctrl+C forwarded, failures explained.
* ``aws`` - the boto3 session (injectable; clients honour ``AWS_ENDPOINT_URL*``) and AWS errors
  turned into ``QrError``.
* ``versions`` - deploy records, publishing a version and moving the ``current`` alias, rollback.
* ``pipeline`` - ``qr deploy`` / ``qr destroy``: build, terraform, alias.
* ``logs``, ``domain``, ``env``, ``status`` - the operating commands.
"""
