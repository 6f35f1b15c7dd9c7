package ircd

// Numerics that gopkg.in/irc.v4 leaves out of its exported set.
const (
	errInputTooLong  = "417"
	errInvalidCapCmd = "410"
	rplLocalUsers    = "265"
	rplGlobalUsers   = "266"
)
