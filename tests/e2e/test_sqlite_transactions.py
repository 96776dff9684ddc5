"""The SQLite set-up: two connections that write at the same time wait for each other.

In SQLite's default (deferred) transactions, one that reads and then writes while another
connection writes fails at once with "database is locked": django-axes's count of a failed
login does that (`select_for_update().get_or_create` in a transaction), and the heartbeat
thread writes every few seconds, so admin logins answered 500 now and then. The settings
begin every transaction with the write lock (`transaction_mode`), so the second waits.
"""

import subprocess
import sys

from tests.support.server import ROOT, server_environment

READ_THEN_WRITE = """
import threading
import django
django.setup()
from django.db import connection, transaction

with connection.cursor() as cursor:
    cursor.execute("CREATE TABLE attempts (n integer)")

has_read = threading.Event()
errors = []

def other_writer():
    has_read.wait()
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("INSERT INTO attempts VALUES (2)")
    except Exception as error:
        errors.append(f"other writer: {error}")
    finally:
        connection.close()

thread = threading.Thread(target=other_writer)
thread.start()
try:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM attempts")
        has_read.set()
        thread.join(timeout=1)  # the other writer writes meanwhile, or waits for this one
        cursor.execute("INSERT INTO attempts VALUES (1)")
except Exception as error:
    errors.append(f"read-then-write: {error}")
has_read.set()
thread.join()
with connection.cursor() as cursor:
    cursor.execute("SELECT count(*) FROM attempts")
    print(errors or cursor.fetchone()[0])
"""


def test_a_transaction_that_reads_then_writes_waits_for_another_writer(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", READ_THEN_WRITE], cwd=ROOT, env=server_environment(tmp_path),
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "2"  # both rows written, no "database is locked"
