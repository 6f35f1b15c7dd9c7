package oauthstandin

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/mxircd/mxircd/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// The stand-in answers raw requests as the spec and the RFCs say, whatever
// client asks: these do not go through package oauth, so a mistake shared by
// the client and the stand-in cannot hide.
func TestStandInAnswersAsTheRFCsSay(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a Dendrite homeserver; skipped with -short")
	}
	hs := testenv.SharedHomeserver(t)
	s := Start(t, hs, Options{})

	do := func(method, path, contentType, body string) (int, http.Header, map[string]any) {
		t.Helper()
		req, err := http.NewRequest(method, s.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var v map[string]any
		json.Unmarshal(b, &v)
		return resp.StatusCode, resp.Header, v
	}
	const form = "application/x-www-form-urlencoded"
	post := func(path string, values url.Values) (int, map[string]any) {
		t.Helper()
		status, h, v := do(http.MethodPost, path, form, values.Encode())
		if h.Get("Cache-Control") != "no-store" {
			t.Errorf("%s answered without Cache-Control: no-store", path)
		}
		return status, v
	}
	wantError := func(what string, status int, v map[string]any, wantStatus int, code string) {
		t.Helper()
		if status != wantStatus || v["error"] != code {
			t.Errorf("%s: HTTP %d %v, want %d %s", what, status, v["error"], wantStatus, code)
		}
	}

	// Metadata with every field the spec requires, and the rest proxied.
	status, _, md := do(http.MethodGet, "/_matrix/client/v1/auth_metadata", "", "")
	if status != http.StatusOK {
		t.Fatalf("auth_metadata: HTTP %d", status)
	}
	for _, field := range []string{"issuer", "authorization_endpoint", "token_endpoint", "revocation_endpoint",
		"registration_endpoint", "response_types_supported", "grant_types_supported",
		"response_modes_supported", "code_challenge_methods_supported", "device_authorization_endpoint"} {
		if md[field] == nil {
			t.Errorf("auth_metadata lacks %s", field)
		}
	}
	if status, _, v := do(http.MethodGet, "/_matrix/client/versions", "", ""); status != http.StatusOK || v["versions"] == nil {
		t.Errorf("versions through the proxy: HTTP %d %v", status, v)
	}

	// Registration (RFC 7591 and the spec's client metadata rules).
	register := func(body string) (int, map[string]any) {
		status, _, v := do(http.MethodPost, "/oauth2/registration", "application/json", body)
		return status, v
	}
	status, v := register(`{"client_uri":"https://x.example/","application_type":"native","token_endpoint_auth_method":"none","grant_types":["urn:ietf:params:oauth:grant-type:device_code","refresh_token"],"response_types":[]}`)
	clientID, _ := v["client_id"].(string)
	if status != http.StatusCreated || clientID == "" {
		t.Fatalf("registration: HTTP %d %v", status, v)
	}
	for what, body := range map[string]string{
		"no client_uri":          `{"token_endpoint_auth_method":"none","grant_types":["refresh_token"],"response_types":[]}`,
		"http client_uri":        `{"client_uri":"http://x.example/","token_endpoint_auth_method":"none","grant_types":["refresh_token"],"response_types":[]}`,
		"user in client_uri":     `{"client_uri":"https://u:p@x.example/","token_endpoint_auth_method":"none","grant_types":["refresh_token"],"response_types":[]}`,
		"code without its grant": `{"client_uri":"https://x.example/","token_endpoint_auth_method":"none","grant_types":["refresh_token"]}`,
		"unknown grant":          `{"client_uri":"https://x.example/","token_endpoint_auth_method":"none","grant_types":["password"],"response_types":[]}`,
		"not JSON":               `client_uri=https://x.example/`,
	} {
		status, v := register(body)
		wantError(what, status, v, http.StatusBadRequest, "invalid_client_metadata")
	}

	// Device authorization (RFC 8628 section 3.1).
	scope := "urn:matrix:client:api:* urn:matrix:client:device:STANDINTEST1"
	status, v = post("/oauth2/device", url.Values{"client_id": {"nobody"}, "scope": {scope}})
	wantError("unknown client", status, v, http.StatusUnauthorized, "invalid_client")
	for what, bad := range map[string]string{
		"no API scope":      "urn:matrix:client:device:STANDINTEST1",
		"no device scope":   "urn:matrix:client:api:*",
		"two devices":       scope + " urn:matrix:client:device:OTHERDEVICE",
		"reserved in an ID": "urn:matrix:client:api:* urn:matrix:client:device:A/B",
		"unknown scope":     scope + " urn:example:other",
	} {
		status, v := post("/oauth2/device", url.Values{"client_id": {clientID}, "scope": {bad}})
		wantError(what, status, v, http.StatusBadRequest, "invalid_scope")
	}
	status, _, _ = do(http.MethodPost, "/oauth2/device", "application/json", `{"client_id":"`+clientID+`"}`)
	if status != http.StatusBadRequest {
		t.Errorf("device authorization as JSON: HTTP %d, want 400 (RFC 8628 wants a form)", status)
	}
	status, v = post("/oauth2/device", url.Values{"client_id": {clientID}, "scope": {scope}})
	deviceCode, _ := v["device_code"].(string)
	userCode, _ := v["user_code"].(string)
	if status != http.StatusOK || deviceCode == "" || userCode == "" || v["verification_uri"] == nil ||
		v["verification_uri_complete"] == nil || v["expires_in"] == nil || v["interval"] == nil {
		t.Fatalf("device authorization: HTTP %d %v", status, v)
	}

	// Token endpoint (RFC 6749 5.2, RFC 8628 3.5).
	tokenForm := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {deviceCode}, "client_id": {clientID}}
	status, v = post("/oauth2/token", tokenForm)
	wantError("first poll", status, v, http.StatusBadRequest, "authorization_pending")
	status, v = post("/oauth2/token", tokenForm)
	wantError("second poll at once", status, v, http.StatusBadRequest, "slow_down")
	status, v = post("/oauth2/token", url.Values{"grant_type": {"password"}, "client_id": {clientID}})
	wantError("password grant", status, v, http.StatusBadRequest, "unsupported_grant_type")
	status, v = post("/oauth2/token", url.Values{"client_id": {clientID}})
	wantError("no grant type", status, v, http.StatusBadRequest, "invalid_request")
	other := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {"made-up"}, "client_id": {clientID}}
	status, v = post("/oauth2/token", other)
	wantError("unknown device code", status, v, http.StatusBadRequest, "invalid_grant")
	if err := s.Deny(strings.ToLower(userCode)); err != nil {
		t.Fatal(err)
	}
	// Denied is final, however soon it is asked.
	status, v = post("/oauth2/token", tokenForm)
	wantError("after Deny", status, v, http.StatusBadRequest, "access_denied")

	// Revocation (RFC 7009): an unknown token is no error.
	status, v = post("/oauth2/revoke", url.Values{"token": {"made-up"}, "client_id": {clientID}})
	if status != http.StatusOK {
		t.Errorf("revoking an unknown token: HTTP %d %v, want 200", status, v)
	}
	status, v = post("/oauth2/revoke", url.Values{"client_id": {clientID}})
	wantError("revoking nothing", status, v, http.StatusBadRequest, "invalid_request")
}
