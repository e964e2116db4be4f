package manifest

import "time"

// Kinds of point in an incremental chain (Chain.Kind).
const (
	KindFull      = "full"
	KindIncrement = "increment"
)

// Chain places a backup in an incremental chain (--incremental): a full
// backup that starts one, or an increment, an LTX file of the pages that
// differ from its parent point. It stays in the clear beside an
// encrypted backup: restore, verify and pruning must follow the chain
// without a key, and it tells nothing of the content the manifest does
// not already tell (page counts and sizes).
type Chain struct {
	Kind string `json:"kind"`
	// Seq is 0 for the full, n for its n-th increment (LTX TXID n+1).
	Seq int `json:"seq"`
	// Parent is the base name of the point an increment applies to, Base
	// that of the chain's full; both empty for a full.
	Parent string `json:"parent,omitempty"`
	Base   string `json:"base,omitempty"`
	// PageSize and Pages describe the database at this point.
	PageSize int   `json:"page_size"`
	Pages    int64 `json:"pages"`
	// Changed is how many pages an increment holds.
	Changed int64 `json:"changed_pages,omitempty"`
	// State is the LTX state checksum of the database at this point
	// (16 hex digits); PreState that of the parent.
	State    string `json:"state_checksum"`
	PreState string `json:"pre_state_checksum,omitempty"`
	// IndexSHA256 is the digest of the page index written with this
	// point: the next increment builds on the index only if it matches.
	IndexSHA256 string `json:"page_index_sha256"`
	// Read says how an increment's pages were read: "file" or
	// "sqlite_dbpage".
	Read string `json:"read,omitempty"`
	// Proof says what was proven when the point was written.
	Proof string `json:"proof"`
	// Checked is the check the materialized state of this point passed
	// ("integrity_check"), empty while none has; CheckedAt says when.
	Checked   string     `json:"checked,omitempty"`
	CheckedAt *time.Time `json:"checked_at,omitempty"`
	// TXID is the point's transaction ID in the directory's Litestream
	// replica (--layout litestream, chain.SyncReplica): a full is the
	// snapshot 1-TXID, an increment the file TXID-TXID, its parent's
	// TXID + 1. Zero for a point written without the layout.
	TXID uint64 `json:"litestream_txid,omitempty"`
}
