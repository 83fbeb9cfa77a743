"""Print the API token of the seeded project: `Authorization: Bearer <token>` (see seed.py).

Usage: IHM_PASSWORD=... IHM_SECRET_KEY=... python api_token.py
"""

import os
import tempfile

from seed import PROJECT, app_for, password_hash

app = app_for(tempfile.mkdtemp(prefix="ihm-token-"))
with app.app_context():
    from itsdangerous import URLSafeSerializer

    secret = app.config["SECRET_KEY"] + password_hash(os.environ["IHM_PASSWORD"])
    print(URLSafeSerializer(secret, salt="auth").dumps([PROJECT]))
