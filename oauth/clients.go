package oauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/mxircd/mxircd/store"
)

// ClientStore keeps the client_id registered with each homeserver;
// *store.SQLStore is one.
type ClientStore interface {
	OAuthClient(ctx context.Context, homeserver string) (*store.OAuthClient, error)
	InitOAuthClient(ctx context.Context, c *store.OAuthClient) (*store.OAuthClient, error)
	DeleteOAuthClient(ctx context.Context, homeserver, clientID string) error
}

// Clients hands out the Client for a homeserver, registering the gateway
// with its authorization server the first time and reusing the stored
// client_id after that (also across restarts and gateways sharing a store:
// the first registration stored wins). Safe for concurrent use.
type Clients struct {
	HTTP  *http.Client // nil: http.DefaultClient
	Info  ClientInfo
	Store ClientStore

	mu     sync.Mutex // guards byHost
	byHost map[string]*hostClient
}

// hostClient is one homeserver's client; its lock is held through
// discovery and registration, so that a homeserver that is slow to answer
// holds up only the logins to it.
type hostClient struct {
	sync.Mutex
	c *Client
}

// For returns the Client for the homeserver at homeserverURL, or
// ErrNotSupported when it does not log in through OAuth 2.0.
func (cs *Clients) For(ctx context.Context, homeserverURL string) (*Client, error) {
	hs := strings.TrimRight(homeserverURL, "/")
	cs.mu.Lock()
	if cs.byHost == nil {
		cs.byHost = map[string]*hostClient{}
	}
	h := cs.byHost[hs]
	if h == nil {
		h = &hostClient{}
		cs.byHost[hs] = h
	}
	cs.mu.Unlock()
	h.Lock()
	defer h.Unlock()
	if h.c != nil {
		return h.c, nil
	}
	c, err := cs.discoverAndRegister(ctx, hs)
	if err != nil {
		// Leave nothing behind for a homeserver that is made up, or
		// that has no OAuth; a later login asks again.
		cs.mu.Lock()
		if cs.byHost[hs] == h {
			delete(cs.byHost, hs)
		}
		cs.mu.Unlock()
		return nil, err
	}
	h.c = c
	return c, nil
}

func (cs *Clients) discoverAndRegister(ctx context.Context, hs string) (*Client, error) {
	md, err := Discover(ctx, cs.HTTP, hs)
	if err != nil {
		return nil, err
	}
	stored, err := cs.Store.OAuthClient(ctx, hs)
	switch {
	case err == nil && stored.Issuer != md.Issuer:
		// The homeserver moved its logins to another server, which has
		// never heard of the old client_id.
		if err := cs.Store.DeleteOAuthClient(ctx, hs, stored.ClientID); err != nil {
			return nil, err
		}
		stored = nil
	case errors.Is(err, store.ErrNotFound):
		stored = nil
	case err != nil:
		return nil, err
	}
	if stored == nil {
		id, err := Register(ctx, cs.HTTP, md, cs.Info)
		if err != nil {
			return nil, err
		}
		stored, err = cs.Store.InitOAuthClient(ctx, &store.OAuthClient{Homeserver: hs, Issuer: md.Issuer, ClientID: id})
		if err != nil {
			return nil, fmt.Errorf("oauth: storing the client_id: %w", err)
		}
	}
	return &Client{HTTP: cs.HTTP, Metadata: md, ClientID: stored.ClientID}, nil
}

// Forget drops c, which the server no longer knows (it answered
// invalid_client), so that the next For registers again.
func (cs *Clients) Forget(ctx context.Context, homeserverURL string, c *Client) error {
	hs := strings.TrimRight(homeserverURL, "/")
	cs.mu.Lock()
	h := cs.byHost[hs]
	cs.mu.Unlock()
	if h != nil {
		h.Lock()
		if h.c == c {
			h.c = nil
		}
		h.Unlock()
	}
	return cs.Store.DeleteOAuthClient(ctx, hs, c.ClientID)
}
