// SPDX-License-Identifier: BSL-1.0
#include "kaa/io_context_host.hpp"

#include <utility>

#include <boost/asio/post.hpp>

namespace kaa {

namespace {

// asio::post is thread-safe and queues (never runs inline), as a
// ThreadedHost invoker must. One invoker serves both priorities: an
// io_context is a FIFO queue, so a time slice waits behind every handler the
// application queued before it -- the host is not starved.
HostInvoker post_to(boost::asio::io_context& io) {
    return [&io](HostTask task) { boost::asio::post(io, std::move(task)); };
}

} // namespace

IoContextHost::IoContextHost(MainLoop& loop, boost::asio::io_context& io, IoContextHostOptions options)
    : io_(io), work_(io.get_executor()) {
    ThreadedHostOptions o;
    o.invoke_idle = post_to(io);
    if (options.stop_io_on_stop)
        o.quit = [&io] { io.stop(); };
    host_ = std::make_unique<ThreadedHost>(loop, post_to(io), std::move(o));
}

IoContextHost::~IoContextHost() {
    host_.reset();
    work_.reset();
}

} // namespace kaa
