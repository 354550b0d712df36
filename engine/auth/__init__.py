"""People, accounts and credentials: who is behind an actor string.

* `people`     — the people of config.yaml, their grants (`party.role`) and the `Principal`;
* `passwords`  — argon2id hashing and the password policy;
* `throttle`   — failed sign-ins recorded, lockout per person and per client address;
* `accounts`   — accounts (table `users`) and `authenticate_password`;
* `tokens`     — personal API tokens (table `tokens`) and `authenticate_token`.

docs/accounts.md is the operators' guide.
"""

from engine.auth.accounts import authenticate_password
from engine.auth.people import Principal, local_cli_principal
from engine.auth.tokens import authenticate_token

__all__ = ["Principal", "authenticate_password", "authenticate_token", "local_cli_principal"]
