package core

// ReassemblyCap returns the capacity of c's reassembly buffer, for tests
// that bound what a hostile peer can make the reader hold. Call it only
// once the connection is done.
func ReassemblyCap(c *Conn) int {
	<-c.done
	return cap(c.msg)
}
