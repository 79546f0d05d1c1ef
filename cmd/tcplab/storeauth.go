package main

import (
	"fmt"
	"log/slog"
	"net/url"
	"os"

	"github.com/redis/go-redis/v9"
)

// redisAuthEnv is where strsvr --store takes the Redis password from when
// the URL carries none: redis-cli's own variable, so one setting serves
// both. A password in the URL is on strsvr's command line, which ps shows
// to everyone on the machine (and svr's ps to anyone who asks).
const redisAuthEnv = "REDISCLI_AUTH"

// storeURLWithAuth returns raw with the password from REDISCLI_AUTH (as
// getenv finds it) when raw carries none (an empty one, as in
// "redis://:@host", is none); a user name in the URL is kept,
// for a Redis ACL user. It also reports whether the password came from the
// URL, which is worth a warning. raw is returned as is when it does not
// parse: redisstore.ParseURL says why.
func storeURLWithAuth(raw string, getenv func(string) (string, bool)) (withAuth string, inURL bool) {
	u, err := url.Parse(raw)
	if err != nil {
		return raw, false
	}
	if u.User != nil {
		if pw, _ := u.User.Password(); pw != "" {
			return raw, true
		}
	}
	pw, ok := getenv(redisAuthEnv)
	if !ok || pw == "" {
		return raw, false
	}
	user := ""
	if u.User != nil {
		user = u.User.Username()
	}
	u.User = url.UserPassword(user, pw)
	return u.String(), false
}

// storeURLFromEnv is storeURLWithAuth with the process's environment.
func storeURLFromEnv(raw string) (string, bool) { return storeURLWithAuth(raw, os.LookupEnv) }

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
