"""RBAC with the real kubectl: default roles, what view and edit grant, ``kubectl auth
can-i`` (and ``--list``), impersonation, escalation prevention, and aggregation.

The users are impersonated by the admin (``--as``/``--as-group``): the request then runs as
that user, so authorization and escalation checks see a non-privileged identity. The server
runs its controller manager (the clusterrole-aggregation controller fills ``view``, ``edit``
and ``admin``) but no node agent.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import Kubectl, Server, create_namespace, start_server, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("rbac")]

ESCALATE_ROLE = """
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: pod-writer}
rules:
- apiGroups: [""]
  resources: [pods]
  verbs: [create, delete]
"""


@pytest.fixture(scope="module")
def rbac_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("rbac") / "data", controllers=True)
    yield srv
    code = srv.stop()
    assert code == 0, f"server exited uncleanly ({code}):\n{srv.log()}"
    assert "Traceback" not in srv.log(), srv.log()


@pytest.fixture
def ns(rbac_server: Server) -> str:
    return create_namespace(rbac_server)


@pytest.fixture
def kubectl(rbac_server: Server, ns: str) -> Kubectl:
    return Kubectl(rbac_server, ns)


def bind(kubectl: Kubectl, user: str, clusterrole: str) -> None:
    kubectl(
        "create",
        "rolebinding",
        f"{user}-{clusterrole}",
        f"--clusterrole={clusterrole}",
        f"--user={user}",
    )


def aggregated(kubectl: Kubectl, role: str) -> None:
    """Wait until the aggregation controller filled ``role``."""
    wait_for(
        lambda: (
            kubectl("get", "clusterrole", role, "-o", "jsonpath={.rules[0].verbs}").stdout or None
        ),
        timeout=30,
        what=f"clusterrole {role} to be aggregated",
    )


def test_default_cluster_roles_and_bindings_exist(kubectl: Kubectl) -> None:
    roles = kubectl("get", "clusterroles", "-o", "name").stdout.split()
    for name in (
        "cluster-admin",
        "admin",
        "edit",
        "view",
        "system:discovery",
        "system:basic-user",
        "system:public-info-viewer",
        "system:node",
        "system:kube-controller-manager",
        "system:kube-scheduler",
    ):
        assert f"clusterrole.rbac.authorization.k8s.io/{name}" in roles
    row = kubectl(
        "get", "clusterrolebinding", "cluster-admin", "-o", "wide", "--no-headers"
    ).stdout.split()
    assert row[:2] == ["cluster-admin", "ClusterRole/cluster-admin"]
    assert "system:masters" in row


def test_view_user_reads_but_cannot_create(kubectl: Kubectl, ns: str) -> None:
    aggregated(kubectl, "view")
    bind(kubectl, "vera", "view")
    kubectl("create", "configmap", "seen", "--from-literal=a=1")
    names = kubectl("get", "configmaps", "-o", "name", "--as=vera").stdout.split()
    assert "configmap/seen" in names
    denied = kubectl("create", "configmap", "mine", "--from-literal=a=1", "--as=vera", check=False)
    assert denied.returncode != 0
    assert (
        f'configmaps is forbidden: User "vera" cannot create resource "configmaps" in API '
        f'group "" in the namespace "{ns}"'
    ) in denied.stderr
    secrets = kubectl("get", "secrets", "--as=vera", check=False)
    assert "Forbidden" in secrets.stderr or "forbidden" in secrets.stderr
    # only in the namespace it is bound in
    elsewhere = kubectl(
        "get", "configmaps", "-n", "default", "--as=vera", check=False, namespaced=False
    )
    assert elsewhere.returncode != 0


def test_edit_user_creates_pods_but_cannot_read_roles(kubectl: Kubectl) -> None:
    aggregated(kubectl, "edit")
    bind(kubectl, "eddie", "edit")
    kubectl("run", "p", "--image=busybox", "--restart=Never", "--as=eddie", "--", "sleep", "1")
    assert kubectl("get", "pod", "p", "-o", "name", "--as=eddie").stdout.strip() == "pod/p"
    for kind in ("roles", "rolebindings"):
        denied = kubectl("get", kind, "--as=eddie", check=False)
        assert denied.returncode != 0
        assert f'User "eddie" cannot list resource "{kind}"' in denied.stderr


def test_can_i_answers_for_self_and_impersonated(kubectl: Kubectl) -> None:
    aggregated(kubectl, "view")
    assert kubectl("auth", "can-i", "create", "pods").stdout.strip() == "yes"
    no = kubectl("auth", "can-i", "get", "pods", "--as=bob", check=False)
    assert (no.returncode, no.stdout.strip()) == (1, "no")
    bind(kubectl, "bob", "view")
    assert kubectl("auth", "can-i", "get", "pods", "--as=bob").stdout.strip() == "yes"
    assert kubectl("auth", "can-i", "delete", "pods", "--as=bob", check=False).stdout.strip() == (
        "no"
    )
    listed = kubectl("auth", "can-i", "--list", "--as=bob").stdout
    rows = {line.split()[0]: line for line in listed.splitlines()[1:] if line.strip()}
    assert "[get list watch]" in rows["pods"]
    assert "selfsubjectaccessreviews.authorization.k8s.io" in rows
    admin = kubectl("auth", "can-i", "--list").stdout
    assert "*.*" in admin


def test_impersonated_groups_are_authorized(kubectl: Kubectl) -> None:
    aggregated(kubectl, "view")
    kubectl("create", "rolebinding", "devs-view", "--clusterrole=view", "--group=devs")
    assert kubectl("get", "pods", "--as=dana", "--as-group=devs").returncode == 0
    denied = kubectl("get", "pods", "--as=dana", check=False)
    assert denied.returncode != 0
    assert 'User "dana" cannot list resource "pods"' in denied.stderr


def test_impersonating_without_the_impersonate_verb_is_forbidden(
    kubectl: Kubectl, rbac_server: Server
) -> None:
    # the node join token is a bootstrap identity, which may not impersonate
    token = (rbac_server.data_dir / "node-token").read_text().strip()
    # discovery as the admin first, as any user's kubectl has it cached: kubectl prints a
    # refused discovery request as "Error from server (Forbidden): unknown", whatever the
    # Status says, and this test is about the Status of the request itself
    kubectl("get", "pods")
    denied = kubectl("get", "pods", f"--token={token}", "--as=dana", check=False)
    assert denied.returncode != 0
    assert (
        'users "dana" is forbidden: User "system:bootstrap:server" cannot impersonate resource '
        '"users" in '
        'API group "" at the cluster scope'
    ) in denied.stderr


def test_role_with_rules_not_held_is_forbidden_until_escalate(kubectl: Kubectl, ns: str) -> None:
    aggregated(kubectl, "view")
    bind(kubectl, "bob", "view")
    kubectl(
        "create",
        "role",
        "role-writer",
        "--verb=create,update",
        "--resource=roles.rbac.authorization.k8s.io",
    )
    kubectl("create", "rolebinding", "bob-role-writer", "--role=role-writer", "--user=bob")
    denied = kubectl("create", "-f", "-", "--as=bob", input=ESCALATE_ROLE, check=False)
    assert denied.returncode != 0
    assert (
        'is forbidden: user "bob" (groups=["system:authenticated"]) is attempting to grant RBAC '
        "permissions not currently held:"
    ) in denied.stderr
    assert '{APIGroups:[""], Resources:["pods"], Verbs:["create"]}' in denied.stderr
    kubectl(
        "create",
        "role",
        "escalator",
        "--verb=escalate",
        "--resource=roles.rbac.authorization.k8s.io",
    )
    kubectl("create", "rolebinding", "bob-escalator", "--role=escalator", "--user=bob")
    kubectl("create", "-f", "-", "--as=bob", input=ESCALATE_ROLE)


def test_binding_a_role_not_held_is_forbidden_until_bind(kubectl: Kubectl) -> None:
    aggregated(kubectl, "view")
    bind(kubectl, "bob", "view")
    kubectl(
        "create",
        "role",
        "binder",
        "--verb=create",
        "--resource=rolebindings.rbac.authorization.k8s.io",
    )
    kubectl("create", "rolebinding", "bob-binder", "--role=binder", "--user=bob")
    # view is bob's own: he may hand it on
    kubectl("create", "rolebinding", "carol-view", "--clusterrole=view", "--user=carol", "--as=bob")
    denied = kubectl(
        "create",
        "rolebinding",
        "carol-edit",
        "--clusterrole=edit",
        "--user=carol",
        "--as=bob",
        check=False,
    )
    assert denied.returncode != 0
    assert "is attempting to grant RBAC permissions not currently held" in denied.stderr
    kubectl(
        "create",
        "role",
        "edit-binder",
        "--verb=bind",
        "--resource=clusterroles.rbac.authorization.k8s.io",
        "--resource-name=edit",
    )
    kubectl("create", "rolebinding", "bob-edit-binder", "--role=edit-binder", "--user=bob")
    kubectl("create", "rolebinding", "carol-edit", "--clusterrole=edit", "--user=carol", "--as=bob")


def test_role_ref_cannot_change(kubectl: Kubectl) -> None:
    kubectl("create", "rolebinding", "fixed", "--clusterrole=view", "--user=x")
    changed = kubectl(
        "patch",
        "rolebinding",
        "fixed",
        "--type=merge",
        "-p",
        '{"roleRef":{"name":"edit"}}',
        check=False,
    )
    assert changed.returncode != 0
    assert (
        'The RoleBinding "fixed" is invalid: roleRef: Invalid value: '
        'rbac.RoleRef{APIGroup:"rbac.authorization.k8s.io", Kind:"ClusterRole", Name:"edit"}: '
        "cannot change roleRef"
    ) in changed.stderr


def test_a_role_labelled_aggregate_to_view_widens_view(kubectl: Kubectl) -> None:
    aggregated(kubectl, "view")
    bind(kubectl, "vera", "view")
    assert kubectl("auth", "can-i", "list", "secrets", "--as=vera", check=False).stdout.strip() == (
        "no"
    )
    kubectl(
        "apply",
        "-f",
        "-",
        input="""
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: secrets-to-view-e2e
  labels: {rbac.authorization.k8s.io/aggregate-to-view: "true"}
rules:
- apiGroups: [""]
  resources: [secrets]
  verbs: [list]
""",
    )
    try:
        wait_for(
            lambda: (
                kubectl("auth", "can-i", "list", "secrets", "--as=vera", check=False).stdout.strip()
                == "yes"
            ),
            timeout=30,
            what="view to grant listing secrets",
        )
    finally:
        kubectl("delete", "clusterrole", "secrets-to-view-e2e")
    wait_for(
        lambda: (
            kubectl("auth", "can-i", "list", "secrets", "--as=vera", check=False).stdout.strip()
            == "no"
        ),
        timeout=30,
        what="view to stop granting listing secrets",
    )


def test_the_scheduler_and_the_controller_manager_are_identities_of_their_own(
    rbac_server: Server, kubectl: Kubectl
) -> None:
    def can(user: str, *what: str) -> str:
        return kubectl("auth", "can-i", *what, f"--as={user}", check=False).stdout.strip()

    scheduler, manager = "system:kube-scheduler", "system:kube-controller-manager"
    assert can(scheduler, "create", "pods", "--subresource=binding") == "yes"
    assert can(scheduler, "patch", "pods", "--subresource=status") == "yes"
    assert can(scheduler, "create", "pods") == "no"
    assert can(scheduler, "get", "secrets") == "no"
    assert can(manager, "create", "pods", "--subresource=binding") == "no"
    assert can(manager, "create", "pods") == "yes"
    # the scheduler in the controller manager's process logs in as itself
    config = (rbac_server.data_dir / "scheduler.kubeconfig").read_text()
    assert "client-certificate-data" in config and "token" not in config
