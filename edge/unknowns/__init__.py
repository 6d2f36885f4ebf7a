"""Unknown identities: strangers' tracks kept (bounded), grouped by face into `u-<n>` ids,
and the actions on them (list, name, ignore, forget; wrong and recognize)."""
