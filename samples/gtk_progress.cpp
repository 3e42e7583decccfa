// SPDX-License-Identifier: BSL-1.0
// A GTK 3 window driven by kaa in guest mode: a threaded job reports progress
// into a GtkProgressBar, and an Abort button aborts it. The GTK main loop is
// the only loop; kaa's callbacks run inside it on the GUI thread.
//
//   gtk_progress                       interactive
//   gtk_progress --screenshot OUT.png  (CI, under xvfb-run) clicks Abort at
//                                      30 %, saves the window as PNG, exits
//   gtk_progress --abort-after-finish  (CI) lets the job finish, then clicks
//                                      Abort: nothing happens, it exits
//
// doc/embedding.md quotes this program.

#include <gtk/gtk.h>

#include <chrono>
#include <cstdio>
#include <optional>
#include <string>
#include <thread>

#include <kaa/glib.hpp>
#include <kaa/main_loop.hpp>
#include <kaa/threaded.hpp>

using namespace std::chrono_literals;

namespace {

struct Ui {
    GtkWidget* window = nullptr;
    GtkWidget* bar = nullptr;
    GtkWidget* status = nullptr;
    GtkWidget* abort = nullptr;
    std::optional<kaa::ThreadInProgress<int>> job;
    std::string screenshot; // non-empty: automated run
    bool abort_after_finish = false;  // automated run: click Abort when done
    bool clicked = false;
};

// Blocking work on a worker thread: 100 steps, reporting progress, checking
// for abort between steps.
int copy_files() {
    for (int i = 1; i <= 100; ++i) {
        std::this_thread::sleep_for(20ms);
        kaa::this_job::check_aborted();
        kaa::this_job::set_progress(i, 100);
    }
    return 100;
}

void set_status(Ui& ui, const std::string& text) {
    gtk_label_set_text(GTK_LABEL(ui.status), text.c_str());
    std::printf("status: %s\n", text.c_str());
    std::fflush(stdout);
}

void save_screenshot(Ui& ui) {
    GdkWindow* win = gtk_widget_get_window(ui.window);
    int w = gdk_window_get_width(win), h = gdk_window_get_height(win);
    GdkPixbuf* shot = gdk_pixbuf_get_from_window(win, 0, 0, w, h);
    GError* err = nullptr;
    if (!shot || !gdk_pixbuf_save(shot, ui.screenshot.c_str(), "png", &err, nullptr)) {
        std::printf("screenshot failed: %s\n", err ? err->message : "no pixbuf");
        if (err)
            g_error_free(err);
    } else {
        std::printf("screenshot: %s (%dx%d)\n", ui.screenshot.c_str(), w, h);
    }
    if (shot)
        g_object_unref(shot);
}

void start_job(Ui& ui) {
    ui.job = kaa::threaded({.progress = true}, copy_files);
    // Progress updates arrive on the GUI thread, coalesced: set the bar.
    ui.job->progress()->changed().connect([&ui](const kaa::Progress& p) {
        gtk_progress_bar_set_fraction(GTK_PROGRESS_BAR(ui.bar), p.percentage() / 100.0);
        std::string text = std::to_string(static_cast<int>(p.percentage())) + " %";
        gtk_progress_bar_set_text(GTK_PROGRESS_BAR(ui.bar), text.c_str());
        if (!ui.screenshot.empty() && !ui.clicked && p.percentage() >= 30) {
            ui.clicked = true;
            gtk_button_clicked(GTK_BUTTON(ui.abort)); // as if the user clicked
        }
    });
    ui.job->connect([&ui](int n) {
        set_status(ui, "done: " + std::to_string(n) + " files");
        if (ui.abort_after_finish) {
            gtk_button_clicked(GTK_BUTTON(ui.abort));  // too late: does nothing
            gtk_widget_destroy(ui.window);
        }
    });
    ui.job->connect_exception([&ui](std::exception_ptr e) {
        set_status(ui, "stopped: " + kaa::describe(e));
        gtk_widget_set_sensitive(ui.abort, FALSE);
        if (!ui.screenshot.empty()) {
            // Let GTK draw the final state, then save it and quit.
            g_timeout_add(
                200,
                [](gpointer p) -> gboolean {
                    auto& ui = *static_cast<Ui*>(p);
                    save_screenshot(ui);
                    gtk_widget_destroy(ui.window);
                    return G_SOURCE_REMOVE;
                },
                &ui);
        }
    });
}

} // namespace

int main(int argc, char** argv) {
    gtk_init(&argc, &argv);
    Ui ui;
    if (argc == 3 && std::string(argv[1]) == "--screenshot")
        ui.screenshot = argv[2];
    ui.abort_after_finish = argc == 2 && std::string(argv[1]) == "--abort-after-finish";

    kaa::MainLoop loop;             // the GUI thread is kaa's main thread
    kaa::glib::Guest guest(loop);   // GTK's loop (the default context) drives kaa

    ui.window = gtk_window_new(GTK_WINDOW_TOPLEVEL);
    gtk_window_set_title(GTK_WINDOW(ui.window), "kaa: threaded job");
    gtk_window_set_default_size(GTK_WINDOW(ui.window), 360, 120);
    GtkWidget* box = gtk_box_new(GTK_ORIENTATION_VERTICAL, 8);
    gtk_container_set_border_width(GTK_CONTAINER(box), 12);
    ui.bar = gtk_progress_bar_new();
    gtk_progress_bar_set_show_text(GTK_PROGRESS_BAR(ui.bar), TRUE);
    ui.status = gtk_label_new("copying...");
    ui.abort = gtk_button_new_with_label("Abort");
    gtk_box_pack_start(GTK_BOX(box), ui.bar, FALSE, FALSE, 0);
    gtk_box_pack_start(GTK_BOX(box), ui.status, FALSE, FALSE, 0);
    gtk_box_pack_start(GTK_BOX(box), ui.abort, FALSE, FALSE, 0);
    gtk_container_add(GTK_CONTAINER(ui.window), box);

    // A GTK signal handler aborts the kaa job: same thread, no locking.
    g_signal_connect(ui.abort, "clicked", G_CALLBACK(+[](GtkButton*, gpointer p) {
                         auto& ui = *static_cast<Ui*>(p);
                         // Harmless once the job has finished: returns false.
                         if (ui.job && !ui.job->abort())
                             std::printf("abort: the job had already finished\n");
                     }),
                     &ui);
    g_signal_connect(ui.window, "destroy", G_CALLBACK(gtk_main_quit), nullptr);

    gtk_widget_show_all(ui.window);
    start_job(ui);
    gtk_main();

    loop.shutdown(); // aborts the job if the window was closed early
    return 0;
}
