-- What an audit record is about: a tool call (`tool` holds the tool's name), a resource read (`tool`
-- holds the resource URI) or a prompt get (`tool` holds the prompt name). Only tool calls are
-- audited when they run; resource reads and prompt gets are audited when a policy rule refuses them.
ALTER TABLE audit_log ADD COLUMN kind text NOT NULL DEFAULT 'tool';
