package main

import (
	"fmt"
	"log/slog"

	"github.com/redis/go-redis/v9"
)

// redisAuthEnv is where strsvr --store takes the Redis password from when
// the URL carries none: redis-cli's own variable, so one setting serves
// both. A password in the URL is on strsvr's command line, which ps shows
// to everyone on the machine (and svr's ps to anyone who asks).
const redisAuthEnv = "REDISCLI_AUTH"

// passwordFromEnv gives go-redis the password from REDISCLI_AUTH (as
// getenv finds it) when the URL carried none (an empty one, as in
// "redis://:@host", is none); a user name from the URL is kept, for a Redis
// ACL user. It reports whether the password came from the URL, which is
// worth a warning.
func passwordFromEnv(opts *redis.Options, getenv func(string) (string, bool)) (inURL bool) {
	if opts.Password != "" {
		return true
	}
	if pw, ok := getenv(redisAuthEnv); ok {
		opts.Password = pw
	}
	return false
}

// warnPasswordInURL says once, at start-up, that the password is exposed.
func warnPasswordInURL(log *slog.Logger) {
	log.Warn("the --store URL holds a password, which ps shows to everyone on this machine; set " + redisAuthEnv + " instead")
}

// withAuthHint adds where the password goes to Redis's refusal for want of
// one (NOAUTH, or WRONGPASS for a wrong one).
func withAuthHint(err error) error {
	if redis.HasErrorPrefix(err, "NOAUTH") || redis.HasErrorPrefix(err, "WRONGPASS") {
		return fmt.Errorf("%w (give the password in %s)", err, redisAuthEnv)
	}
	return err
}
