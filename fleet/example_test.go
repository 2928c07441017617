package fleet_test

import (
	"crypto/rand"
	"fmt"

	"aead.dev/minisign"

	"github.com/walletless/walletless/fleet"
)

// A fleet manager signs a document and publishes the envelope, retained, on the
// target's slot topic; a device verifies it with the public key it trusts.
func ExampleSeal() {
	pub, priv, err := minisign.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	doc := []byte(`{"v":1,"version":7,"target":{"group":"seoul"},"config":{"printer":{"language":"ko"}}}`)
	payload, err := fleet.Seal(doc, fleet.Sign(priv, doc))
	if err != nil {
		panic(err)
	}
	d, _ := fleet.ParseDocument(doc)
	fmt.Println("publish retained, QoS 1, on", d.Target.Slot().Topic())

	// The device side.
	env, _ := fleet.ParseEnvelope(payload)
	_, err = fleet.Verify([]minisign.PublicKey{pub}, env.Document, []byte(env.Signature))
	fmt.Println("verified:", err == nil)
	fmt.Println("reports on", fleet.ReportTopic("shop-7"))
	// Output:
	// publish retained, QoS 1, on walletless/v1/fleet/config/groups/seoul
	// verified: true
	// reports on walletless/v1/devices/shop-7/config/reported
}
