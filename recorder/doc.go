// Package recorder will write sessions as asciicast v2 typescripts, keep the
// session index and seal recordings against tampering. Not implemented yet:
// see the "Session recording" issue.
package recorder
