-- BotBot database schema (created by `sandbox up` on legacy, as the botbot role).
CREATE TABLE messages (
    id        text PRIMARY KEY,              -- common.message_id(channel, nick, text)
    channel   text NOT NULL,
    nick      text NOT NULL,
    text      text NOT NULL,
    ts        timestamptz NOT NULL,          -- when the bot saw the message
    logged_at timestamptz NOT NULL DEFAULT now(),
    logged_by text NOT NULL                  -- the worker that inserted it (legacy-1, new-2, ...)
);
CREATE INDEX messages_channel_ts ON messages (channel, ts DESC);

CREATE TABLE accounts (
    id         bigserial PRIMARY KEY,
    name       text NOT NULL UNIQUE,
    email      text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
