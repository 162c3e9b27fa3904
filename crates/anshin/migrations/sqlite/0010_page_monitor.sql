-- The checkout-page monitor (PCI DSS 6.4.3, 11.6.1): payment pages an operator
-- registered, the scripts authorised on each (with who and why), and the
-- destinations browsers' CSP violation reports named. The last inventory is
-- the page's scripts, frames, form targets and headers as JSON: addresses and
-- hashes, never page content.
CREATE TABLE monitored_pages (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants (id),
    name           TEXT NOT NULL,
    url            TEXT NOT NULL,
    mode           TEXT NOT NULL,
    interval_s     INTEGER NOT NULL,
    -- The unguessable part of the page's CSP report URL (browsers send no key).
    report_key     TEXT NOT NULL UNIQUE,
    -- Hosts forms on the page may post to, besides the page's own (JSON array).
    form_hosts     TEXT NOT NULL,
    created_by     TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    next_run_at    INTEGER NOT NULL,
    last_run_at    INTEGER,
    last_status    TEXT,
    last_inventory TEXT
) STRICT;
CREATE INDEX monitored_pages_tenant ON monitored_pages (tenant_id, created_at);
CREATE INDEX monitored_pages_due ON monitored_pages (next_run_at);

CREATE TABLE page_scripts (
    page_id       TEXT NOT NULL REFERENCES monitored_pages (id),
    script_key    TEXT NOT NULL,
    justification TEXT NOT NULL,
    authorised_by TEXT NOT NULL,
    authorised_at INTEGER NOT NULL,
    PRIMARY KEY (page_id, script_key)
) STRICT;

CREATE TABLE csp_destinations (
    page_id     TEXT NOT NULL REFERENCES monitored_pages (id),
    directive   TEXT NOT NULL,
    destination TEXT NOT NULL,
    first_seen  INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL,
    reports     INTEGER NOT NULL,
    PRIMARY KEY (page_id, directive, destination)
) STRICT;
