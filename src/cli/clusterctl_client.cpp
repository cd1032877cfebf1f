#include "clusterctl_client.h"

#include <netdb.h>

namespace clusterctl {

// Why a request got no HTTP answer, in the words of someone fixing it.
clusterd::Status transport_failure(httplib::Error error, const ServerUrl& url, const std::string& request,
                                   int read_timeout_s) {
  const std::string server = to_string(url);
  const std::string unreachable = "cannot reach clusterd at " + server;
  const std::string hint = "; is 'clusterd start' running? set --server or CLUSTERCTL_SERVER";
  switch (error) {
    case httplib::Error::Connection: {
      // httplib does not say why connect failed; a failed name lookup is the one case we
      // can tell apart, and otherwise nothing listens on the port.
      addrinfo* found = nullptr;
      int lookup = ::getaddrinfo(url.host.c_str(), nullptr, nullptr, &found);
      if (found != nullptr) ::freeaddrinfo(found);
      if (lookup != 0) {
        return clusterd::unavailable(unreachable + " (host name '" + url.host +
                                     "' not found: " + ::gai_strerror(lookup) + "); set --server or CLUSTERCTL_SERVER");
      }
      return clusterd::unavailable(unreachable + " (connection refused)" + hint);
    }
    case httplib::Error::ConnectionTimeout:
      return clusterd::unavailable(unreachable + " (no answer to connect within " +
                                   std::to_string(kConnectTimeoutSeconds) + " s)" + hint);
    case httplib::Error::Read:
      return clusterd::unavailable("clusterd at " + server + " did not answer " + request + " within " +
                                   std::to_string(read_timeout_s) +
                                   " s or closed the connection; check that node's log, or set "
                                   "--server to ask another node");
    case httplib::Error::SSLConnection:
      return clusterd::unavailable("TLS handshake with " + server +
                                   " failed; if it serves plain HTTP, use http:// in --server");
    case httplib::Error::SSLServerVerification:
      return clusterd::unavailable("the TLS certificate of " + server + " is not trusted by this machine's CA store");
    default: return clusterd::unavailable(unreachable + " (" + httplib::to_string(error) + ")" + hint);
  }
}

}  // namespace clusterctl
