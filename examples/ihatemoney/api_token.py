"""Print the API token of the seeded project: `Authorization: Bearer <token>` (see seed.py).

Usage: IHM_PASSWORD=... IHM_SECRET_KEY=... python api_token.py
"""

import os
import tempfile

from seed import PROJECT, app_for, password_hash

with tempfile.TemporaryDirectory(prefix="ihm-token-") as scratch:
    app = app_for(scratch, scratch)  # an empty database: only the settings are needed
    with app.app_context():
        from itsdangerous import URLSafeSerializer

        secret = app.config["SECRET_KEY"] + password_hash(os.environ["IHM_PASSWORD"])
        print(URLSafeSerializer(secret, salt="auth").dumps([PROJECT]))
