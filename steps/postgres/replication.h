#pragma once
// PostgreSQL logical replication between two databases, as `postgres.replicate`,
// `postgres.cutover` and the `postgres_replication` check see it: one name for the publication
// (on the source), the replication slot (on the source) and the subscription (on the target).
// What the three read and drop is here, so that they agree on it.

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "connection.h"
#include "copy_commands.h"

namespace plan::pg {

struct ReplicationParams {
  ConnParams source;                    // the engine's connection to the publisher
  ConnParams target;                    // the engine's connection to the subscriber
  std::optional<ConnParams> publisher;  // how the target server reaches the source (default: source)
  std::string name;                     // publication = slot = subscription
  std::string source_db, target_db;
};

/// Reads source, target, publisher and name. Throws params::BadParam.
ReplicationParams parse_replication(const Json& p);
/// The parameters the three share, declared once: source, target, name (and publisher when
/// `with_publisher`).
std::vector<ParamSpec> replication_params(bool with_publisher);

/// The same endpoints as copy-database's parameters, for its undo of the target (copy_undo.h).
CopyParams as_copy(const ReplicationParams& r);

/// The subscription's CONNECTION string: the publisher's conninfo with its password, for the
/// target server (never for messages: it holds the password).
std::string subscription_conninfo(const ReplicationParams& r);

/// The publisher's side, read through a connection to the source.
struct SlotState {
  bool exists = false;
  bool active = false;                // a walsender streams from it
  std::string current_lsn;            // pg_current_wal_lsn() on the source
  std::string confirmed_lsn;          // the slot's confirmed_flush_lsn ("" before the first)
  long long lag_bytes = -1;           // current - confirmed (-1: unknown)
  std::optional<double> lag_seconds;  // the walsender's replay_lag (0 when caught up)
};
SlotState read_slot(Connection& src, const std::string& slot);
/// Whether the source has written nothing past `lsn` that the slot has not confirmed:
/// confirmed_flush_lsn >= lsn. Throws OperationError.
bool confirmed_past(Connection& src, const std::string& slot, const std::string& lsn);

/// The subscriber's side, read through a connection to the target.
struct SubscriptionState {
  bool exists = false;
  bool enabled = false;
  bool worker = false;  // its apply worker runs
  std::string oid;
  int tables = 0;
  std::vector<std::string> not_ready;           // "public.messages (copying data)"
  long long apply_errors = 0, sync_errors = 0;  // pg_stat_subscription_stats
};
SubscriptionState read_subscription(Connection& tgt, const std::string& name);

/// What is missing for replicating the source into the target, one item each, in the operator's
/// words ("wal_level is replica on the source; it must be logical (a restart)"). Empty: ready.
/// A publication, slot or subscription already named `name` is missing too (the name is taken):
/// postgres.replicate undoes its own interrupted attempt before it asks.
std::vector<std::string> missing_prerequisites(Connection& src, Connection& tgt, const std::string& name);

/// The tables the publication carries: every table outside the system schemas (and extensions).
std::vector<std::string> published_tables(Connection& src);

/// Drops the subscription (on the target), its slots and the publication (on the source), each
/// only when there; a side that cannot be reached is tried, said in the returned problems and
/// left. `log` gets one line per object dropped. `known_oid`: the subscription's oid as recorded,
/// to find its table copies' slots (pg_OID_sync_...) once the subscription itself is gone.
std::vector<std::string> drop_replication(const ReplicationParams& r, Deadline deadline, const CancelToken& cancel,
                                          const std::function<void(const std::string&)>& log,
                                          const std::string& known_oid = "");

/// Sets every sequence of the target to its value on the source (logical replication does not
/// carry them). Returns how many. Throws OperationError.
int copy_sequences(Connection& src, Connection& tgt);

/// "botbot_migration from 127.0.0.2:5432/botbot to 127.0.0.3:5432/botbot": for messages.
std::string replication_display(const ReplicationParams& r);

}  // namespace plan::pg
