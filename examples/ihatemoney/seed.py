"""Seed an I Hate Money database for the benchmark: one project, its members and many bills.

Usage: IHM_PASSWORD=... IHM_SECRET_KEY=... python seed.py DIR [--members N] [--bills N]

Writes DIR/ihatemoney.db (ihatemoney.cfg names the database file of a state directory).

Writes through the application's own models (SQLAlchemy), so the schema is the one of the
installed version. The project's password hash uses a fixed salt: the same password and secret
key always give the same API token (api_token.py prints it), so the token can be stored once as a
credential.
"""

import argparse
import datetime
import hashlib
import os
import random
import tempfile

PROJECT = "bench"
SALT = "perf-harness-seed"
ITERATIONS = 600_000


def password_hash(password: str) -> str:
    """A werkzeug-compatible pbkdf2 hash with a fixed salt (deterministic, unlike the default)."""
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), SALT.encode(), ITERATIONS).hex()
    return f"pbkdf2:sha256:{ITERATIONS}${SALT}${digest}"


def app_for(directory: str, instance: str):
    """The application with its database in `directory` and its instance folder `instance`."""
    os.environ["IHM_STATE_DIR"] = os.path.abspath(directory)
    os.environ.setdefault("IHATEMONEY_SETTINGS_FILE_PATH",
                          os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                       "ihatemoney.cfg"))
    from ihatemoney.run import create_app

    return create_app(instance_path=instance)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory")
    parser.add_argument("--members", type=int, default=8)
    parser.add_argument("--bills", type=int, default=2000)
    args = parser.parse_args()
    db_file = os.path.join(args.directory, "ihatemoney.db")
    if os.path.exists(db_file):
        os.remove(db_file)
    with tempfile.TemporaryDirectory(prefix="ihm-instance-") as instance:
        seed(app_for(args.directory, instance), args.members, args.bills)
    print(f"seeded {db_file}: project {PROJECT}, {args.members} members, {args.bills} bills")


def seed(app, members: int, bills: int) -> None:
    from ihatemoney.models import Bill, Person, Project, db

    rng = random.Random(1)
    with app.app_context():
        project = Project(id=PROJECT, name="Benchmark", contact_email="bench@localhost",
                          password=password_hash(os.environ["IHM_PASSWORD"]),
                          default_currency="XXX")
        db.session.add(project)
        people = [Person(name=f"member {i}", project=project) for i in range(members)]
        db.session.add_all(people)
        db.session.flush()
        start = datetime.date(2024, 1, 1)
        for number in range(bills):
            owers = rng.sample(people, rng.randint(1, len(people)))
            db.session.add(Bill(amount=round(rng.uniform(1, 200), 2), what=f"bill {number}",
                                date=start + datetime.timedelta(days=number % 365),
                                payer_id=rng.choice(people).id, owers=owers,
                                original_currency="XXX", project_default_currency="XXX"))
        db.session.commit()


if __name__ == "__main__":
    main()
