// Command etcd is etcd's own server (go.etcd.io/etcd/server/v3/etcdmain) built from its published
// Go module at the version pinned in the module's go.mod; every flag is etcd's.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
