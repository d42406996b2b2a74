"""Who may be handed another user's new token: never someone who would gain, through it, the right to see
personal data unmasked that they do not hold themselves."""

from __future__ import annotations

from app.db.session import unit_of_work
from app.models import UserRole
from app.users import create_user, set_view_pii
from tests.users.conftest import Site
from tests.web.world import bearer


def _user(site: Site, name: str, role: UserRole, *, pii: bool = False) -> tuple[int, str]:
    with unit_of_work(site.factory) as session:
        created = create_user(session, tenant="acme", name=name, role=role)
        if pii:
            set_view_pii(session, "acme", name, allowed=True)
        return created.user.id, created.token


def test_an_admin_without_view_pii_cannot_take_the_token_of_a_user_who_has_it(site: Site) -> None:
    privileged_id, privileged = _user(site, "pia", UserRole.supervisor, pii=True)
    plain_id, _ = _user(site, "sam", UserRole.supervisor)
    _, admin = _user(site, "ada", UserRole.admin)
    _, trusted_admin = _user(site, "tia", UserRole.admin, pii=True)

    refused = site.client.post(f"/api/users/{privileged_id}/rotate-token", headers=bearer(admin))
    assert refused.status_code == 403 and "personal data" in refused.json()["detail"]
    assert site.client.get("/api/me", headers=bearer(privileged)).status_code == 200  # nothing was issued

    # A user without it, or an admin who has it too, or the user themselves: as before.
    assert site.client.post(f"/api/users/{plain_id}/rotate-token", headers=bearer(admin)).status_code == 200
    renewed = site.client.post(f"/api/users/{privileged_id}/rotate-token", headers=bearer(trusted_admin))
    assert renewed.status_code == 200
    assert site.client.post("/api/me/rotate-token", headers=bearer(renewed.json()["token"])).status_code == 200
