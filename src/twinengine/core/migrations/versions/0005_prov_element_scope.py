"""PROV element ids are scoped per project: ``prov_elements`` keyed by (project, id).

Until now an element (``ex:data``, ``sha256:…``, ``twin:run/…``) was one row shared by
every document that named it, so a project read the attributes another project had
recorded for the same id. Each project now has its own row; ``""`` is the scope of
documents of no project (runs and imports from the CLI). Existing rows are copied into
every project whose documents list them.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_COLUMNS = "id, kind, label, start_time, end_time, attributes, document_id"
# each (project, element) pair: from the documents listing the element and the document
# that first recorded it, the project of the document or of its run
_SCOPES = """
SELECT DISTINCT COALESCE(d.project, ru.project, '') AS project, m.element_id AS id
FROM (
    SELECT element_id, document_id FROM prov_members
    UNION SELECT id, document_id FROM prov_elements WHERE document_id IS NOT NULL
) m
LEFT JOIN prov_documents d ON d.id = m.document_id
LEFT JOIN runs ru ON ru.id = d.run_id
"""


def _table(name: str, scoped: bool) -> None:
    columns = [
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("label", sa.Text),
        sa.Column("start_time", sa.DateTime(timezone=True)),
        sa.Column("end_time", sa.DateTime(timezone=True)),
        sa.Column("attributes", sa.JSON),
        sa.Column("document_id", sa.String(32)),
    ]
    if scoped:
        columns.insert(0, sa.Column("project", sa.String(64), nullable=False, server_default=""))
        op.create_table(name, *columns, sa.PrimaryKeyConstraint("project", "id"))
    else:
        op.create_table(name, *columns, sa.PrimaryKeyConstraint("id"))


def upgrade() -> None:
    _table("prov_elements_scoped", scoped=True)
    elements = ", ".join(f"e.{c.strip()}" for c in _COLUMNS.split(","))
    op.execute(
        f"INSERT INTO prov_elements_scoped (project, {_COLUMNS}) "
        f"SELECT s.project, {elements} FROM ({_SCOPES}) s JOIN prov_elements e ON e.id = s.id"
    )
    op.execute(  # elements no document lists (should not exist): kept, of no project
        f"INSERT INTO prov_elements_scoped (project, {_COLUMNS}) SELECT '', {_COLUMNS} "
        "FROM prov_elements WHERE id NOT IN (SELECT id FROM prov_elements_scoped)"
    )
    op.drop_table("prov_elements")
    op.rename_table("prov_elements_scoped", "prov_elements")
    op.create_index("ix_prov_elements_id", "prov_elements", ["id"])


def downgrade() -> None:
    op.drop_index("ix_prov_elements_id", "prov_elements")
    _table("prov_elements_shared", scoped=False)
    op.execute(
        f"INSERT INTO prov_elements_shared ({_COLUMNS}) SELECT {_COLUMNS} FROM prov_elements e "
        "WHERE e.project = (SELECT MIN(o.project) FROM prov_elements o WHERE o.id = e.id)"
    )
    op.drop_table("prov_elements")
    op.rename_table("prov_elements_shared", "prov_elements")
