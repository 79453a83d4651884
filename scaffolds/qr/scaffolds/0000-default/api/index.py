"""GET / - the file path is the URL: api/index.py serves /."""

import os


def get():
    return {"message": f"{os.environ.get('GREETING', 'Hello')} from qr"}
