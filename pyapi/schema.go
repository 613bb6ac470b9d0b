package pyapi

import "github.com/fraiseql/fraiseql-subscriptions/subscriptions"

// PostgresSchemaSQL is the SQL that creates the PostgreSQL bus's objects
// (subscriptions.SchemaSQL) in schema, followed by the grants for
// executorRole and publisherRole when they are not empty. Empty table,
// notifyChannel and function take the bus's defaults.
func PostgresSchemaSQL(table, notifyChannel, function, schema, executorRole, publisherRole string) (sql string, err error) {
	defer recoverTo(&err)
	opts := subscriptions.PostgresOptions{Table: table, NotifyChannel: notifyChannel, Function: function}
	objects, err := subscriptions.SchemaSQL(opts, schema)
	if err != nil {
		return "", pyError(err)
	}
	grants, err := subscriptions.GrantsSQL(opts, schema, executorRole, publisherRole)
	if err != nil {
		return "", pyError(err)
	}
	return objects + grants, nil
}
